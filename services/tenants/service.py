"""The tenant service: read it, check the form, link an existing tenant, record the agreement, create one."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit
from services.access import Caller
from services.clock import SYSTEM_CLOCK, Clock
from services.countries import country_name, normalise_country
from services.db import utcnow
from services.errors import Conflict, DomainError, InvalidInput, NotFound
from services.i18n import _
from services.jobs import FAILED, JobService, JobView
from services.mail import is_mail_address
from services.models import Job, Organisation, TenantServiceRow
from services.organisations import OrganisationService
from services.partner_center import (
    PartnerCenterAuthError,
    PartnerCenterClient,
    PartnerCenterError,
    PartnerCenterNotFound,
    PartnerCenterThrottled,
    PartnerCenterUnavailable,
)
from services.partner_center.client import MICROSOFT_CUSTOMER_AGREEMENT
from services.partner_center.models import (
    Address,
    AddressValidationStatus,
    Contact,
    Customer,
    CustomerBillingProfile,
    CustomerCompanyProfile,
    CustomerUser,
    PasswordProfile,
)
from services.roles import Permission
from services.tenants.credentials import CredentialsMail, new_password
from services.tenants.form import (
    DOMAIN_SUFFIX,
    CountryProfile,
    FormInvalid,
    TenantForm,
    country_profile_of,
    phone_digits,
    prefix_problem,
    suggest_prefix,
    validate_form,
)
from services.tenants.views import (
    ACTIVE,
    CREATE_ATTEMPTS,
    CREATE_JOB,
    CREATED,
    CREATING,
    LINKED,
    MAIL_NONE,
    MAIL_PENDING,
    MAIL_QUEUED,
    MAIL_SENT,
    AddressCheck,
    MicrosoftContact,
    ServiceView,
    TryAgain,
    row_of,
    service_of,
    snapshot_of,
    view_of,
)

log = logging.getLogger(__name__)

ORPHANED_CLAIM_AFTER = timedelta(minutes=10)  # a tenant claim whose job was never stored


class TenantService:
    """The organisation's one Microsoft 365 tenant; the sign-in e-mail is `CredentialsMail`'s."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        organisations: OrganisationService,
        partner_center: PartnerCenterClient,
        jobs: JobService,
        credentials: CredentialsMail,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._sessions = sessions
        self._clock = clock  # Microsoft's: an agreement acceptance without a date is dated by it
        self._organisations = organisations
        self._pc = partner_center
        self._jobs = jobs
        self._credentials = credentials
        jobs.register(CREATE_JOB, self._run_create)

    # ---- reading ------------------------------------------------------------------------------
    async def _row(self, session: AsyncSession, organisation_id: int) -> TenantServiceRow | None:
        return await row_of(session, organisation_id)

    async def my_service(self, caller: Caller) -> ServiceView | None:
        """The caller's organisation's Microsoft 365 service (active or being created), if any."""
        caller.require(Permission.READ_SUBSCRIPTIONS)
        async with self._sessions() as session:
            row = await self._row(session, caller.organisation_id)
            if row is not None and row.status == CREATING and await self._gave_up(session, row):
                row = None
            return view_of(row, caller.organisation_name) if row is not None else None

    async def _gave_up(self, session: AsyncSession, row: TenantServiceRow) -> bool:
        """A claim whose job failed for good (e.g. an unexpected error after all its attempts) is
        released, so the organisation is not stuck "being created" forever."""
        job = await session.scalar(select(Job).where(Job.idempotency_key == row.job_key))
        if job is None:
            # The claim is committed a moment before its job: a claim without a job long after (the
            # process stopped in between) would otherwise say "being created" for ever.
            if row.requested_at > utcnow() - ORPHANED_CLAIM_AFTER:
                return False
        elif job.status != FAILED:
            return False
        await self._release(row.organisation_id, row.job_key, "system:jobs", _("job failed"))
        return True

    async def country_profile(self, country: str) -> CountryProfile:
        code = normalise_country(country)
        if code is None:
            raise FormInvalid({"country": _("Choose the company's country from the list.")})
        try:
            rules = await self._pc.country_rules(code)
        except PartnerCenterNotFound:
            raise FormInvalid(
                {
                    "country": _(
                        "Microsoft does not take new customers in {country_name} from this form.",
                        country_name=country_name(code),
                    )
                }
            ) from None
        return country_profile_of(code, rules)

    async def prefilled_form(self, caller: Caller) -> tuple[TenantForm, CountryProfile | None]:
        """The form from the organisation's profile; culture and language default to the country's."""
        caller.require(Permission.MANAGE_SERVICES)
        org = await self._organisations.get_by_id(caller.organisation_id)
        form = TenantForm(
            company_name=org.name,
            address_line1=org.address_line1,
            address_line2=org.address_line2,
            city=org.city,
            state=org.state,
            postal_code=org.postal_code,
            country=org.country,
            first_name=org.contact_first_name,
            last_name=org.contact_last_name,
            email=org.contact_email,
            phone=org.contact_phone,
            culture=org.culture,
            language=org.language,
            registration_number=org.registration_number,
            domain_prefix=org.domain_prefix or suggest_prefix(org.name),
        )
        profile: CountryProfile | None = None
        if org.country:
            try:
                profile = await self.country_profile(org.country)
            except FormInvalid:
                profile = None
        if profile is not None:
            form = self.with_country_defaults(form, profile)
        return form, profile

    @staticmethod
    def with_country_defaults(form: TenantForm, profile: CountryProfile) -> TenantForm:
        """Culture and language the country supports: the stored ones if allowed, else its defaults."""
        culture = next((c for c in profile.cultures if c.lower() == form.culture.lower()), profile.default_culture)
        language = next(
            (lang for lang in profile.languages if lang.lower() == form.language.lower()), profile.default_language
        )
        return replace(form, culture=culture, language=language)

    async def check_form(self, caller: Caller, values: Mapping[str, Any]) -> tuple[TenantForm, CountryProfile]:
        """The form normalised, or `FormInvalid` with every problem by field. Only Microsoft's
        country rules are read; nothing is sent."""
        caller.require(Permission.MANAGE_SERVICES)
        form = TenantForm.from_mapping(values)
        if not form.country:
            raise FormInvalid({"country": _("Choose the company's country from the list.")})
        profile = await self.country_profile(form.country)
        cleaned, errors = validate_form(form, profile)
        if errors:
            raise FormInvalid(errors, form=cleaned, profile=profile)
        return cleaned, profile

    # ---- Microsoft's checks ----------------------------------------------------------------------
    async def domain_available(self, prefix: str) -> bool:
        problem = prefix_problem(prefix)
        if problem:
            raise FormInvalid({"domain_prefix": problem})
        return not await self._pc.domain_is_taken(f"{prefix.lower()}{DOMAIN_SUFFIX}")

    async def free_alternative(self, prefix: str, company_name: str) -> str | None:
        """One free prefix close to the wanted one (a few look-ups at most)."""
        base = (prefix.lower() or suggest_prefix(company_name))[:24] or "tenant"
        for candidate in (f"{base}ltd", f"{base}hq", f"{base}{secrets.randbelow(900) + 100}"):
            if prefix_problem(candidate) is None and not await self._pc.domain_is_taken(candidate + DOMAIN_SUFFIX):
                return candidate
        return None

    async def check_address(self, form: TenantForm) -> AddressCheck:
        """Microsoft's address validation, turned into what the card does next."""
        result = await self._pc.validate_address(
            Address(
                address_line1=form.address_line1,
                address_line2=form.address_line2 or None,
                city=form.city,
                state=form.state or None,
                postal_code=form.postal_code or None,
                country=form.country,
            )
        )
        status = str(result.status or AddressValidationStatus.NOT_VALIDATED)
        suggestion = None
        for suggested in result.suggested_addresses:
            candidate = {
                "address_line1": suggested.address_line1 or "",
                "address_line2": suggested.address_line2 or "",
                "city": suggested.city or "",
                "state": suggested.state or "",
                "postal_code": suggested.postal_code or "",
            }
            if any(candidate[k].lower() != form.address()[k].lower() for k in candidate):
                suggestion = candidate
                break
        if status in (AddressValidationStatus.VERIFIED_SHIPPABLE, AddressValidationStatus.VERIFIED):
            return AddressCheck(status, True, None, _("Microsoft verified the address."))
        if status in (AddressValidationStatus.NONE, AddressValidationStatus.NOT_VALIDATED):
            return AddressCheck(
                status,
                False,
                None,
                _("Microsoft could not find this address. Check the street, city, state and postal code."),
            )
        message = (
            _("Microsoft suggests a correction of the address.")
            if suggestion
            else _("Microsoft could not confirm every part of the address (for example the house number).")
        )
        return AddressCheck(status, False, suggestion, message)

    async def relationship_link(self) -> str:
        """The reseller-relationship request link for a tenant that exists already."""
        return await self._pc.relationship_request_url()

    # ---- linking an existing tenant ------------------------------------------------------------
    async def link_existing(self, caller: Caller) -> ServiceView | None:
        """Record the caller's Teams tenant as the organisation's service once Microsoft lists it as
        a customer of the reseller (the relationship was accepted). None while it is not."""
        caller.require(Permission.MANAGE_SERVICES)
        current = await self.my_service(caller)
        if current is not None:
            if current.status == CREATING:
                raise Conflict(_("A new tenant is being created for your organisation; it cannot be linked now."))
            return current
        org = await self._organisations.get_by_id(caller.organisation_id)
        tenant_id = org.partner_center_customer_id or org.teams_tenant_id
        if not tenant_id:
            return None
        try:
            customer = await self._pc.get_customer(tenant_id)
        except PartnerCenterNotFound:
            return None
        if not customer.id:
            return None
        await self._organisations.set_partner_center_customer(org.id, customer.id, actor=caller.actor)
        async with self._sessions.begin() as session:
            row = TenantServiceRow(
                organisation_id=org.id,
                status=ACTIVE,
                origin=LINKED,
                customer_id=customer.id.lower(),
                domain=customer.domain or "",
                requested_by=caller.actor,
                completed_at=utcnow(),
                credentials_status=MAIL_NONE,
            )
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict(_("Your organisation's service changed a moment ago; look at My services.")) from None
            audit.record(
                session,
                actor=caller.actor,
                action="tenant.link",
                organisation_id=org.id,
                target=row.domain,
                after=snapshot_of(row),
            )
            return view_of(row, caller.organisation_name)

    # ---- the Microsoft Customer Agreement of a linked tenant -------------------------------------
    async def mca_recorded(self, caller: Caller) -> bool:
        """Whether Microsoft has the customer's acceptance of the MCA (needed before buying). An
        attestation made elsewhere (e.g. in Partner Center) is copied to My services."""
        caller.require(Permission.READ_SUBSCRIPTIONS)
        async with self._sessions() as session:
            row = await self._row(session, caller.organisation_id)
            if row is None or row.status != ACTIVE or not row.customer_id:
                return False
            if row.mca_accepted_at is not None:
                return True
            customer_id = row.customer_id
        recorded = await self._pc.agreements(customer_id, agreement_type=MICROSOFT_CUSTOMER_AGREEMENT)
        if not recorded:
            return False
        first = recorded[0]
        contact = first.primary_contact
        await self._record_mca(
            caller.organisation_id,
            name=f"{contact.first_name} {contact.last_name}".strip() if contact else "",
            email=contact.email if contact else "",
            accepted_at=first.date_agreed or self._clock.now(),
            actor="system:partner-center",
        )
        return True

    async def attest_mca(self, caller: Caller, contact: MicrosoftContact) -> ServiceView:
        """Record with Microsoft that the customer accepted the MCA (name, e-mail, date)."""
        caller.require(Permission.MANAGE_SERVICES)
        if not contact.first_name or not contact.last_name or not is_mail_address(contact.email):
            raise InvalidInput(_("Give the name and e-mail of the person accepting the Microsoft Customer Agreement."))
        current = await self.my_service(caller)
        if current is None or not current.active or not current.customer_id:
            raise Conflict(_("Your organisation has no Microsoft tenant yet; type **add tenant** first."))
        if await self.mca_recorded(caller):
            return await self._current(caller)
        await self._pc.accept_agreement(
            current.customer_id,
            Contact(first_name=contact.first_name, last_name=contact.last_name, email=contact.email),
            date_agreed=contact.accepted_at,
        )
        await self._record_mca(
            caller.organisation_id,
            name=contact.name,
            email=contact.email.lower(),
            accepted_at=contact.accepted_at,
            actor=caller.actor,
        )
        return await self._current(caller)

    async def _current(self, caller: Caller) -> ServiceView:
        view = await self.my_service(caller)
        if view is None:
            raise NotFound(_("Your organisation's tenant is no longer recorded."))
        return view

    async def _record_mca(
        self, organisation_id: int, *, name: str, email: str, accepted_at: datetime, actor: str
    ) -> None:
        async with self._sessions.begin() as session:
            row = await self._row(session, organisation_id)
            if row is None or row.mca_accepted_at is not None:
                return
            before = snapshot_of(row)
            row.mca_name, row.mca_email, row.mca_accepted_at = name, email, accepted_at
            audit.record(
                session,
                actor=actor,
                action="tenant.mca_attested",
                organisation_id=organisation_id,
                target=row.domain,
                before=before,
                after=snapshot_of(row),
            )

    # ---- creating a new tenant ------------------------------------------------------------------
    async def start_creation(
        self,
        caller: Caller,
        values: Mapping[str, Any],
        contact: MicrosoftContact,
        *,
        notify_conversation_id: str | None,
    ) -> tuple[JobView, bool]:
        """Claim the organisation's one tenant and submit the job that creates it.

        Exactly once: the organisation's row is unique, so a second confirmation (a double click, a
        re-delivered activity, another admin) finds the job already under way. Returns the job and
        whether this call started it."""
        caller.require(Permission.MANAGE_SERVICES)
        form, _unused = await self.check_form(caller, values)  # never trust what the card carried
        if not contact.first_name or not contact.last_name or not is_mail_address(contact.email):
            raise InvalidInput(_("Give the name and e-mail of the person accepting the Microsoft Customer Agreement."))
        await self.my_service(caller)  # releases a claim whose job failed for good
        job_key = f"{CREATE_JOB}:{caller.organisation_id}:{uuid.uuid4()}"
        async with self._sessions() as session:
            org = await session.get(Organisation, caller.organisation_id)
            if org is None:
                raise NotFound(_("Your organisation is no longer registered."))
            row = await self._row(session, caller.organisation_id)
            if row is None and org.partner_center_customer_id:
                raise Conflict(_("Your organisation already has a Microsoft tenant; see **my services**."))
            if row is None:
                row = TenantServiceRow(
                    organisation_id=org.id,
                    status=CREATING,
                    origin=CREATED,
                    domain=form.domain,
                    job_key=job_key,
                    requested_by=caller.actor,
                    contact_email=form.email,
                    credentials_status=MAIL_PENDING,
                    mca_name=contact.name,
                    mca_email=contact.email.lower(),
                )
                session.add(row)
                audit.record(
                    session,
                    actor=caller.actor,
                    action="tenant.create_requested",
                    organisation_id=org.id,
                    target=form.domain,
                    after={"form": form.as_dict(), "mca_name": contact.name, "mca_email": contact.email},
                )
                try:
                    await session.commit()
                except IntegrityError:  # another confirmation won the race: use its job
                    await session.rollback()
                    row = await self._row(session, caller.organisation_id)
                    if row is None:
                        raise Conflict(_("That request is being handled; try again in a moment.")) from None
            if row.status == ACTIVE:
                raise Conflict(
                    _(
                        "Your organisation already has its Microsoft tenant {domain}; see **my services**.",
                        domain=row.domain,
                    )
                )
            job_key = row.job_key
        payload = {
            "job_key": job_key,
            "form": form.as_dict(),
            "contact": {
                "first_name": contact.first_name,
                "last_name": contact.last_name,
                "email": contact.email.lower(),
                "accepted_at": contact.accepted_at.isoformat(),
            },
        }
        return await self._jobs.submit(
            CREATE_JOB,
            idempotency_key=job_key,
            payload=payload,
            organisation_id=caller.organisation_id,
            requested_by=caller.actor,
            notify_conversation_id=notify_conversation_id,
            max_attempts=CREATE_ATTEMPTS + 1,
        )

    async def _release(self, organisation_id: int, job_key: str, actor: str, reason: str) -> None:
        """Microsoft refused or never answered: free the claim so the admin can correct and retry."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(TenantServiceRow).where(
                    TenantServiceRow.organisation_id == organisation_id,
                    TenantServiceRow.job_key == job_key,
                    TenantServiceRow.status == CREATING,
                )
            )
            audit.record(
                session,
                actor=actor,
                action="tenant.create_failed",
                organisation_id=organisation_id,
                after={"reason": reason},
            )

    async def _run_create(self, job: JobView) -> Mapping[str, Any]:
        """The durable job: each step looks at what is done already, so a re-run finishes the work."""
        organisation_id = job.organisation_id
        if organisation_id is None:
            raise DomainError(_("This request has no organisation."))
        form = TenantForm.from_mapping(job.payload.get("form") or {})
        key = await self._job_key_of(organisation_id)
        if key is None or key != job.payload.get("job_key"):
            # Released (Microsoft refused, or it failed for good) and perhaps claimed again since.
            raise DomainError(_("This request was withdrawn; nothing was created by it."))
        row_status = await self._status_of(organisation_id)
        if row_status == CREATING:
            await self._create_at_microsoft(job, organisation_id, form, key)
        # The tenant exists from here on: its sign-in details go out first, whatever happens to the
        # agreement below (a re-run leaves a queued e-mail to its own job).
        if await self._credentials_status_of(organisation_id) == MAIL_PENDING:
            await self._credentials.deliver(organisation_id, job, first_name=form.first_name)
        mca_recorded = await self._attest_mca(job, organisation_id)
        view = await self.service_of(organisation_id)
        if view is None:
            raise DomainError(_("The organisation's tenant is no longer recorded."))
        return self._outcome(view, mca_recorded=mca_recorded)

    async def _credentials_status_of(self, organisation_id: int) -> str | None:
        async with self._sessions() as session:
            row = await self._row(session, organisation_id)
            return row.credentials_status if row is not None else None

    async def _job_key_of(self, organisation_id: int) -> str | None:
        async with self._sessions() as session:
            row = await self._row(session, organisation_id)
            return row.job_key if row is not None else None

    async def _status_of(self, organisation_id: int) -> str | None:
        async with self._sessions() as session:
            row = await self._row(session, organisation_id)
            return row.status if row is not None else None

    async def _create_at_microsoft(self, job: JobView, organisation_id: int, form: TenantForm, key: str) -> None:
        request = Customer(
            company_profile=CustomerCompanyProfile(
                domain=form.domain, organization_registration_number=form.registration_number or None
            ),
            billing_profile=CustomerBillingProfile(
                email=form.email,
                culture=form.culture,
                language=form.language,
                company_name=form.company_name,
                default_address=Address(
                    country=form.country,
                    city=form.city,
                    state=form.state or None,
                    address_line1=form.address_line1,
                    address_line2=form.address_line2 or None,
                    postal_code=form.postal_code or None,
                    first_name=form.first_name,
                    last_name=form.last_name,
                    phone_number=phone_digits(form.phone) or None,
                ),
            ),
        )
        try:
            # The job's key is the MS-RequestId: Microsoft recognises a re-run of the same job.
            customer = await self._pc.create_customer(request, request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, key)))
        except (PartnerCenterUnavailable, PartnerCenterThrottled, PartnerCenterAuthError) as error:
            if job.attempts < CREATE_ATTEMPTS:
                raise TryAgain(_("Partner Center did not answer ({code})", code=error.code)) from None
            await self._release(organisation_id, key, job.requested_by, error.code)
            raise DomainError(
                _(
                    "Microsoft did not answer, so {domain} was not created. Nothing was charged; type **add "
                    "tenant** to try again later.",
                    domain=form.domain,
                )
            ) from None
        except PartnerCenterError as error:
            await self._release(organisation_id, key, job.requested_by, error.code)
            raise DomainError(
                _(
                    "Microsoft did not create {domain}: {message} Nothing was created or charged; type **add "
                    "tenant** to correct it and try again.",
                    domain=form.domain,
                    message=error.message,
                )
            ) from None
        if not customer.id:
            raise TryAgain(_("Microsoft's answer had no customer id"))
        credentials = customer.user_credentials
        user_name = (credentials.user_name if credentials else None) or ""
        password = credentials.password.get_secret_value() if credentials and credentials.password else None
        if password is None:
            # The answer was lost and the tenant found by its domain: Microsoft shows the password only
            # once, so give the first admin a new one (they must change it at first sign-in).
            user_name, password = await self._reset_first_admin(customer.id, customer.domain or form.domain)
        if "@" not in user_name and user_name:
            user_name = f"{user_name}@{customer.domain or form.domain}"
        await self._organisations.set_partner_center_customer(organisation_id, customer.id, actor=job.requested_by)
        async with self._sessions.begin() as session:
            row = await self._row(session, organisation_id)
            if row is None:
                raise DomainError(_("The request disappeared while Microsoft created the tenant."))
            before = snapshot_of(row)
            row.status = ACTIVE
            row.customer_id = customer.id.lower()
            row.domain = customer.domain or form.domain
            row.completed_at = utcnow()
            row.admin_user = user_name
            row.credentials_password = self._credentials.seal(password) if password else None
            row.credentials_status = MAIL_PENDING if password else MAIL_NONE
            audit.record(
                session,
                actor=job.requested_by,
                action="tenant.create",
                organisation_id=organisation_id,
                target=row.domain,
                before=before,
                after=snapshot_of(row),
            )
        log.info("tenant created for organisation %s (customer %s)", organisation_id, customer.id)

    async def _reset_first_admin(self, customer_id: str, domain: str) -> tuple[str, str | None]:
        wanted = f"admin@{domain}".lower()
        try:
            users = self._pc.users(customer_id)
            admin: CustomerUser | None = None
            async for user in users:
                if (user.user_principal_name or "").lower() == wanted:
                    admin = user
                    break
            await users.aclose()
            if admin is None or not admin.id:
                return wanted, None
            password = new_password()
            await self._pc.update_user(
                customer_id,
                admin.id,
                CustomerUser(
                    password_profile=PasswordProfile(password=SecretStr(password), force_change_password=True)
                ),
            )
            return wanted, password
        except PartnerCenterError as error:
            log.warning("could not give the first admin of %s a new password (%s)", customer_id, error.code)
            return wanted, None

    async def _attest_mca(self, job: JobView, organisation_id: int) -> bool:
        """Record the MCA acceptance with Microsoft; whether it is recorded. The tenant exists already,
        so a refusal (or Microsoft not answering after every try) does not fail the job: the admin is
        told, and "add tenant" asks for the acceptance again."""
        contact = job.payload.get("contact") or {}
        async with self._sessions() as session:
            row = await self._row(session, organisation_id)
            if row is None or not row.customer_id:
                return False
            if row.mca_accepted_at is not None:
                return True
            customer_id = row.customer_id
        accepted_at = (
            datetime.fromisoformat(str(contact.get("accepted_at"))) if contact.get("accepted_at") else self._clock.now()
        )
        try:
            recorded = await self._pc.agreements(customer_id, agreement_type=MICROSOFT_CUSTOMER_AGREEMENT)
            if not recorded:
                await self._pc.accept_agreement(
                    customer_id,
                    Contact(
                        first_name=str(contact.get("first_name", "")),
                        last_name=str(contact.get("last_name", "")),
                        email=str(contact.get("email", "")),
                    ),
                    date_agreed=accepted_at,
                )
        except (PartnerCenterUnavailable, PartnerCenterThrottled, PartnerCenterAuthError) as error:
            if job.attempts < CREATE_ATTEMPTS:
                raise TryAgain(_("Partner Center did not answer ({code})", code=error.code)) from None
            await self._mca_not_recorded(job, organisation_id, error.code)
            return False
        except PartnerCenterError as error:
            await self._mca_not_recorded(job, organisation_id, error.code)
            return False
        async with self._sessions.begin() as session:
            row = await self._row(session, organisation_id)
            if row is None:
                return False
            before = snapshot_of(row)
            row.mca_accepted_at = accepted_at
            audit.record(
                session,
                actor=job.requested_by,
                action="tenant.mca_attested",
                organisation_id=organisation_id,
                target=row.domain,
                before=before,
                after=snapshot_of(row),
            )
        return True

    async def _mca_not_recorded(self, job: JobView, organisation_id: int, reason: str) -> None:
        log.warning("organisation %s: Microsoft did not record the MCA acceptance (%s)", organisation_id, reason)
        async with self._sessions.begin() as session:
            audit.record(
                session,
                actor=job.requested_by,
                action="tenant.mca_failed",
                organisation_id=organisation_id,
                after={"reason": reason},
            )

    # ---- the operator's view (CLI: no caller, any organisation) -----------------------------------
    async def service_of(self, organisation_id: int) -> ServiceView | None:
        return await service_of(self._sessions, organisation_id)

    async def resend_credentials(self, organisation_id: int, *, actor: str) -> ServiceView:
        """Deliver sign-in details still waiting for their e-mail (after the retries gave up)."""
        return await self._credentials.resend(organisation_id, actor=actor)

    @staticmethod
    def _outcome(view: ServiceView, *, mca_recorded: bool = True) -> dict[str, Any]:
        """The job's result: what the follow-up message shows (no password, ever)."""
        if view.credentials_status == MAIL_SENT:
            mail = _("The sign-in details were e-mailed to {mail_to}.", mail_to=view.mail_to)
        elif view.credentials_status == MAIL_QUEUED:
            mail = _(
                "The e-mail with the sign-in details to {mail_to} is on its way: the mail server did not "
                "take it yet, so it is being retried.",
                mail_to=view.mail_to,
            )
        else:
            mail = _(
                "Microsoft did not give a password for the first admin; use “Forgot password” at "
                "https://portal.office.com or ask your reseller."
            )
        if not mca_recorded:
            mail += _(
                " Microsoft did not record the acceptance of the Microsoft Customer Agreement yet, and nothing "
                "can be bought without it: type **add tenant** to record it."
            )
        return {
            "message": _(
                "Your Microsoft 365 tenant {domain} is ready. {mail} No charges have arisen.",
                domain=view.domain,
                mail=mail,
            ),
            "customer_id": view.customer_id,
            "domain": view.domain,
            "admin_user": view.admin_user,
            "mail_to": view.mail_to,
            "mail_note": mail,
            "credentials_status": view.credentials_status,
            "mca_name": view.mca_name if mca_recorded else "",
        }
