"""The organisation's Microsoft 365 tenant: link the one it has, or create a new one (SPEC §1).

- `prefilled_form` / `check_form`: the form from the organisation's profile, checked by Microsoft's
  country rules (state, postal code, registration number, phone) and the prefix rules before
  anything is sent; every problem is reported per field (`FormInvalid`).
- `domain_available`, `check_address`: Microsoft's domain availability and address validation.
- `start_creation`: claims the organisation's one tenant row (unique key: exactly once, whoever
  clicks how often) and submits the durable job `tenant.create`; the job creates the customer with
  Microsoft (the job key is its MS-RequestId; the client finds a tenant whose answer was lost),
  records the organisation's customer id, the MCA attestation, and e-mails the first admin's
  credentials (job `tenant.credentials_mail` retries a mail server that is down).
- `link_existing`: once the customer's global admin accepted the reseller relationship, the
  caller's own Teams tenant is a customer: it is recorded as the organisation's service.
Every change is audited; the password is never returned, logged or put into an error.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import string
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit
from services.access import Caller
from services.alerts import AlertService
from services.db import utcnow
from services.errors import Conflict, DomainError, InvalidInput, NotFound
from services.jobs import FAILED, JobService, JobView
from services.mail import Mail, Mailer, MailNotDelivered, is_mail_address
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
    CountryValidationRules,
    Customer,
    CustomerBillingProfile,
    CustomerCompanyProfile,
    CustomerUser,
    PasswordProfile,
)
from services.roles import Permission
from services.sealed_secrets import SecretBox, SecretUnreadable

log = logging.getLogger(__name__)

CREATE_JOB = "tenant.create"
MAIL_JOB = "tenant.credentials_mail"
CREATING, ACTIVE = "creating", "active"
CREATED, LINKED = "created", "linked"
# Credentials e-mail: sent; queued (mail server down, retried); none (Microsoft gave no password).
MAIL_SENT, MAIL_QUEUED, MAIL_PENDING, MAIL_NONE = "sent", "queued", "pending", "none"
CREATE_ATTEMPTS = 4  # tries of the whole job when Microsoft does not answer (the client retries too)
MAIL_ATTEMPTS = 12  # ~30 minutes of back-off before the operator alert says it keeps failing
DOMAIN_SUFFIX = ".onmicrosoft.com"
ORPHANED_CLAIM_AFTER = timedelta(minutes=10)  # a tenant claim whose job was never stored
# Where Microsoft's rules resource gives no field for it: the countries whose customers need an
# organisation registration number (and a phone number) — Microsoft's list for 600049/600051,
# plus Brazil (CNPJ). A rules answer carrying the sandbox's extension object wins over this list.
REGISTRATION_COUNTRIES = frozenset("AM AZ BY HU KZ KG MD RU TJ UZ UA BR".split())
PHONE_COUNTRIES = frozenset("AM AZ BY HU KZ KG MD RU TJ UZ UA".split())

_PHONE = re.compile(r"^\+?[0-9 ()./-]{6,25}$")
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,26}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_LIMITS = {
    "company_name": 200,
    "address_line1": 200,
    "address_line2": 200,
    "city": 100,
    "state": 100,
    "postal_code": 20,
    "first_name": 100,
    "last_name": 100,
    "email": 254,
    "phone": 40,
    "registration_number": 64,
}

# --- The form -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantForm:
    """What the admin fills in (card input ids are these names). Plain strings, as entered."""

    company_name: str = ""
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    culture: str = ""
    language: str = ""
    registration_number: str = ""
    domain_prefix: str = ""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TenantForm:
        """From a card submit or stored state: known keys only, every value a stripped string."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: " ".join(str(v or "").split()) for k, v in values.items() if k in known})

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def domain(self) -> str:
        return f"{self.domain_prefix}{DOMAIN_SUFFIX}"

    @property
    def contact_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def address(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("address_line1", "address_line2", "city", "state", "postal_code")}


@dataclass(frozen=True)
class CountryProfile:
    """Microsoft's rules for one country, as the form needs them."""

    country: str
    state_required: bool
    states: tuple[str, ...]
    postal_required: bool
    postal_pattern: str
    city_required: bool
    cultures: tuple[str, ...]
    languages: tuple[str, ...]
    registration_required: bool
    registration_pattern: str
    phone_required: bool

    @property
    def default_culture(self) -> str:
        return self.cultures[0] if self.cultures else "en-US"

    @property
    def default_language(self) -> str:
        return self.languages[0] if self.languages else "en"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CountryProfile:
        data = dict(values)
        for key in ("states", "cultures", "languages"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)


def country_profile_of(country: str, rules: CountryValidationRules) -> CountryProfile:
    extensions = (rules.model_extra or {}).get("sandboxExtensions")
    extensions = extensions if isinstance(extensions, dict) else {}
    cultures = list(rules.supported_cultures_list)
    if rules.default_culture and rules.default_culture in cultures:
        cultures.remove(rules.default_culture)
        cultures.insert(0, rules.default_culture)
    return CountryProfile(
        country=country,
        state_required=bool(rules.is_state_required),
        states=tuple(rules.supported_states_list),
        postal_required=bool(rules.is_postal_code_required),
        postal_pattern=rules.postal_code_regex or "",
        city_required=rules.is_city_required is not False,
        cultures=tuple(cultures),
        languages=tuple(rules.supported_languages_list),
        registration_required=bool(
            extensions.get("organizationRegistrationNumberRequired", country in REGISTRATION_COUNTRIES)
        ),
        registration_pattern=str(extensions.get("organizationRegistrationNumberRegex") or ""),
        phone_required=bool(extensions.get("phoneNumberRequired", country in PHONE_COUNTRIES)),
    )


class FormInvalid(InvalidInput):
    """The form has problems; `errors` maps each field to what is wrong with it."""

    def __init__(
        self,
        errors: Mapping[str, str],
        *,
        form: TenantForm | None = None,
        profile: CountryProfile | None = None,
    ) -> None:
        first = next(iter(errors.values()), "Please check the form.")
        super().__init__(first, field=next(iter(errors), None))
        self.errors = dict(errors)
        self.form = form  # the form as normalised so far, to show again with the errors
        self.profile = profile


def prefix_problem(prefix: str) -> str | None:
    """Microsoft's rule for `<prefix>.onmicrosoft.com`, explained for what was typed."""
    if not prefix:
        return "Choose a domain prefix, e.g. contoso for contoso.onmicrosoft.com."
    if "." in prefix:
        return "Type only the prefix, without dots: for contoso.onmicrosoft.com type contoso."
    if any(ch.isspace() for ch in prefix):
        return "The prefix cannot contain spaces."
    if len(prefix) > 27:
        return f"The prefix can have at most 27 characters (this one has {len(prefix)})."
    if not prefix[0].isalpha():
        return "The prefix must start with a letter."
    if not _PREFIX.match(prefix.lower()):
        return "The prefix can only have letters (a-z) and digits."
    return None


def suggest_prefix(company_name: str) -> str:
    """A prefix from the company name: its letters and digits, starting with a letter, ≤27."""
    cleaned = re.sub(r"[^a-z0-9]", "", company_name.lower())
    cleaned = cleaned.lstrip("0123456789")
    return cleaned[:27]


def _postal_matches(pattern: str, postal: str) -> bool:
    try:
        return re.match(pattern, postal) is not None or re.match(pattern, postal.upper()) is not None
    except re.error:  # a pattern we cannot read is Microsoft's to check, not ours
        return True


def validate_form(form: TenantForm, profile: CountryProfile) -> tuple[TenantForm, dict[str, str]]:
    """Normalise the form and list every problem by field; nothing is sent to Microsoft."""
    errors: dict[str, str] = {}
    required = {
        "company_name": "Enter the company name.",
        "address_line1": "Enter the street address; Microsoft requires it.",
        "first_name": "Enter the contact's first name.",
        "last_name": "Enter the contact's last name.",
        "email": "Enter the contact's e-mail address; the sign-in details are sent there.",
    }
    for name, message in required.items():
        if not getattr(form, name):
            errors[name] = message
    if profile.city_required and not form.city:
        errors["city"] = "Enter the city; Microsoft requires it."
    state = form.state
    if profile.states:
        match = next((s for s in profile.states if s.lower() == state.lower()), None)
        state = match or state
    if profile.state_required and not state:
        errors["state"] = f"Enter the state or region; it is required in {profile.country}."
    elif state and profile.states and state not in profile.states:
        errors["state"] = f"{state} is not a state of {profile.country}; use its code, e.g. {profile.states[0]}."
    postal = form.postal_code.upper() if profile.country in {"GB", "CA", "IE", "NL"} else form.postal_code
    if profile.postal_required and not postal:
        errors["postal_code"] = f"Enter the postal code; it is required in {profile.country}."
    elif postal and profile.postal_pattern and not _postal_matches(profile.postal_pattern, postal):
        errors["postal_code"] = f"{postal} is not a postal code of {profile.country}."
    email = form.email.lower()
    if email and not is_mail_address(email):
        errors["email"] = f"{form.email} is not a valid e-mail address."
    phone = form.phone
    if not phone and profile.phone_required:
        errors["phone"] = f"Enter a phone number; Microsoft requires one in {profile.country}."
    elif phone and (not _PHONE.match(phone) or not 6 <= sum(ch.isdigit() for ch in phone) <= 15):
        errors["phone"] = "Enter the phone number with digits only (a leading + and spaces are fine)."
    registration = form.registration_number
    if profile.registration_required:
        if not registration:
            errors["registration_number"] = (
                f"Microsoft requires the company registration number for a company in {profile.country}."
            )
        elif profile.registration_pattern and not re.match(profile.registration_pattern, registration):
            errors["registration_number"] = "That registration number is not in the format this country uses."
    else:
        registration = ""  # Microsoft refuses one where the country does not use it (600002)
    culture = next((c for c in profile.cultures if c.lower() == form.culture.lower()), "")
    if not culture:
        errors["culture"] = f"Choose one of the cultures Microsoft supports in {profile.country}."
    language = next((lang for lang in profile.languages if lang.lower() == form.language.lower()), "")
    if not language:
        errors["language"] = f"Choose one of the languages Microsoft supports in {profile.country}."
    problem = prefix_problem(form.domain_prefix)
    if problem:
        errors["domain_prefix"] = problem
    for name, limit in _LIMITS.items():
        if name not in errors and len(getattr(form, name)) > limit:
            errors[name] = f"At most {limit} characters."
    cleaned = replace(
        form,
        country=profile.country,
        state=state,
        postal_code=postal,
        email=email,
        culture=culture or form.culture,
        language=language or form.language,
        registration_number=registration,
        domain_prefix=form.domain_prefix.lower() if not problem else form.domain_prefix,
    )
    return cleaned, errors


def _phone_digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def mask_email(address: str) -> str:
    """`c***@contoso.com`: enough to recognise, not enough to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


# --- Views -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddressCheck:
    """Microsoft's verdict: `ok` (go on), a `suggestion` to offer for one click, or no match."""

    status: str
    ok: bool
    suggestion: dict[str, str] | None
    message: str


@dataclass(frozen=True)
class MicrosoftContact:
    """Who accepted the Microsoft Customer Agreement for the customer, and when."""

    first_name: str
    last_name: str
    email: str
    accepted_at: datetime

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(frozen=True)
class ServiceView:
    organisation_id: int
    organisation_name: str
    status: str
    origin: str
    customer_id: str | None
    domain: str
    requested_by: str
    requested_at: datetime
    completed_at: datetime | None
    admin_user: str
    mail_to: str
    credentials_status: str
    mca_name: str
    mca_email: str
    mca_accepted_at: datetime | None

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


def _view(row: TenantServiceRow, organisation_name: str) -> ServiceView:
    return ServiceView(
        organisation_id=row.organisation_id,
        organisation_name=organisation_name,
        status=row.status,
        origin=row.origin,
        customer_id=row.customer_id,
        domain=row.domain,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        completed_at=row.completed_at,
        admin_user=row.admin_user,
        mail_to=mask_email(row.contact_email) if row.contact_email else "",
        credentials_status=row.credentials_status,
        mca_name=row.mca_name,
        mca_email=row.mca_email,
        mca_accepted_at=row.mca_accepted_at,
    )


def _snapshot(row: TenantServiceRow) -> dict[str, Any]:
    """What the audit log keeps of the row (never the password)."""
    return {
        "status": row.status,
        "origin": row.origin,
        "customer_id": row.customer_id,
        "domain": row.domain,
        "admin_user": row.admin_user,
        "credentials_status": row.credentials_status,
        "mca_name": row.mca_name,
        "mca_email": row.mca_email,
        "mca_accepted_at": row.mca_accepted_at.isoformat() if row.mca_accepted_at else None,
    }


class _TryAgain(Exception):
    """Microsoft (or the mail server) did not answer: the job runner tries again after a back-off."""


def _new_password() -> str:
    """16 characters from all four classes (Microsoft's complexity rule needs three)."""
    alphabet = string.ascii_letters + string.digits + "!#%+-=?@"
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(16))
        classes = [
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        ]
        if all(classes):
            return value


CREDENTIALS_BODY = """Hello {first_name},

Your new Microsoft 365 tenant for {company} is ready.

Sign in at https://portal.office.com with
  user name: {user_name}
  password:  {{password}}

You will be asked to choose a new password when you first sign in. No charges have arisen yet:
subscriptions are bought separately, in Teams ("add subscription").

Your reseller
"""


CREDENTIALS_HTML = """<p>Hello {first_name},</p>
<p>Your new Microsoft 365 tenant for <b>{company}</b> is ready.</p>
<p>Sign in at <a href="https://portal.office.com">portal.office.com</a> with</p>
<table><tr><td>user name</td><td><code>{user_name}</code></td></tr>
<tr><td>password</td><td><code>{{password}}</code></td></tr></table>
<p>You will be asked to choose a new password when you first sign in. No charges have arisen yet:
subscriptions are bought separately, in Teams (&ldquo;add subscription&rdquo;).</p>
<p>Your reseller</p>
"""


# --- The service -----------------------------------------------------------------------------------


class TenantService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        organisations: OrganisationService,
        partner_center: PartnerCenterClient,
        jobs: JobService,
        mailer: Mailer,
        box: SecretBox,
        alerts: AlertService,
    ) -> None:
        self._sessions = sessions
        self._organisations = organisations
        self._pc = partner_center
        self._jobs = jobs
        self._mailer = mailer
        self._box = box
        self._alerts = alerts
        jobs.register(CREATE_JOB, self._run_create)
        jobs.register(MAIL_JOB, self._run_mail)

    # ---- reading ------------------------------------------------------------------------------
    async def _row(self, session: AsyncSession, organisation_id: int) -> TenantServiceRow | None:
        return await session.scalar(select(TenantServiceRow).where(TenantServiceRow.organisation_id == organisation_id))

    async def my_service(self, caller: Caller) -> ServiceView | None:
        """The caller's organisation's Microsoft 365 service (active or being created), if any."""
        caller.require(Permission.READ_SUBSCRIPTIONS)
        async with self._sessions() as session:
            row = await self._row(session, caller.organisation_id)
            if row is not None and row.status == CREATING and await self._gave_up(session, row):
                row = None
            return _view(row, caller.organisation_name) if row is not None else None

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
        await self._release(row.organisation_id, row.job_key, "system:jobs", "job failed")
        return True

    async def country_profile(self, country: str) -> CountryProfile:
        code = country.strip().upper()
        if not _COUNTRY.match(code):
            raise FormInvalid({"country": "Enter the country as its two-letter code, e.g. GB, US or DE."})
        try:
            rules = await self._pc.country_rules(code)
        except PartnerCenterNotFound:
            raise FormInvalid({"country": f"Microsoft has no rules for country {code}; check the code."}) from None
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
            raise FormInvalid({"country": "Enter the country as its two-letter code, e.g. GB, US or DE."})
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
            return AddressCheck(status, True, None, "Microsoft verified the address.")
        if status in (AddressValidationStatus.NONE, AddressValidationStatus.NOT_VALIDATED):
            return AddressCheck(
                status,
                False,
                None,
                "Microsoft could not find this address. Check the street, city, state and postal code.",
            )
        message = (
            "Microsoft suggests a correction of the address."
            if suggestion
            else "Microsoft could not confirm every part of the address (for example the house number)."
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
                raise Conflict("A new tenant is being created for your organisation; it cannot be linked now.")
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
                raise Conflict("Your organisation's service changed a moment ago; look at My services.") from None
            audit.record(
                session,
                actor=caller.actor,
                action="tenant.link",
                organisation_id=org.id,
                target=row.domain,
                after=_snapshot(row),
            )
            return _view(row, caller.organisation_name)

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
            accepted_at=first.date_agreed or utcnow(),
            actor="system:partner-center",
        )
        return True

    async def attest_mca(self, caller: Caller, contact: MicrosoftContact) -> ServiceView:
        """Record with Microsoft that the customer accepted the MCA (name, e-mail, date)."""
        caller.require(Permission.MANAGE_SERVICES)
        if not contact.first_name or not contact.last_name or not is_mail_address(contact.email):
            raise InvalidInput("Give the name and e-mail of the person accepting the Microsoft Customer Agreement.")
        current = await self.my_service(caller)
        if current is None or not current.active or not current.customer_id:
            raise Conflict("Your organisation has no Microsoft tenant yet; type **add tenant** first.")
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
            raise NotFound("Your organisation's tenant is no longer recorded.")
        return view

    async def _record_mca(
        self, organisation_id: int, *, name: str, email: str, accepted_at: datetime, actor: str
    ) -> None:
        async with self._sessions.begin() as session:
            row = await self._row(session, organisation_id)
            if row is None or row.mca_accepted_at is not None:
                return
            before = _snapshot(row)
            row.mca_name, row.mca_email, row.mca_accepted_at = name, email, accepted_at
            audit.record(
                session,
                actor=actor,
                action="tenant.mca_attested",
                organisation_id=organisation_id,
                target=row.domain,
                before=before,
                after=_snapshot(row),
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
        form, _ = await self.check_form(caller, values)  # never trust what the card carried
        if not contact.first_name or not contact.last_name or not is_mail_address(contact.email):
            raise InvalidInput("Give the name and e-mail of the person accepting the Microsoft Customer Agreement.")
        await self.my_service(caller)  # releases a claim whose job failed for good
        job_key = f"{CREATE_JOB}:{caller.organisation_id}:{uuid.uuid4()}"
        async with self._sessions() as session:
            org = await session.get(Organisation, caller.organisation_id)
            if org is None:
                raise NotFound("Your organisation is no longer registered.")
            row = await self._row(session, caller.organisation_id)
            if row is None and org.partner_center_customer_id:
                raise Conflict("Your organisation already has a Microsoft tenant; see **my services**.")
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
                        raise Conflict("That request is being handled; try again in a moment.") from None
            if row.status == ACTIVE:
                raise Conflict(f"Your organisation already has its Microsoft tenant {row.domain}; see **my services**.")
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
            raise DomainError("This request has no organisation.")
        form = TenantForm.from_mapping(job.payload.get("form") or {})
        key = await self._job_key_of(organisation_id)
        if key is None or key != job.payload.get("job_key"):
            # Released (Microsoft refused, or it failed for good) and perhaps claimed again since.
            raise DomainError("This request was withdrawn; nothing was created by it.")
        row_status = await self._status_of(organisation_id)
        if row_status == CREATING:
            await self._create_at_microsoft(job, organisation_id, form, key)
        # The tenant exists from here on: its sign-in details go out first, whatever happens to the
        # agreement below (a re-run leaves a queued e-mail to its own job).
        if await self._credentials_status_of(organisation_id) == MAIL_PENDING:
            await self._deliver_credentials(organisation_id, job, first_name=form.first_name)
        mca_recorded = await self._attest_mca(job, organisation_id)
        view = await self.service_of(organisation_id)
        if view is None:
            raise DomainError("The organisation's tenant is no longer recorded.")
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
                    phone_number=_phone_digits(form.phone) or None,
                ),
            ),
        )
        try:
            # The job's key is the MS-RequestId: Microsoft recognises a re-run of the same job.
            customer = await self._pc.create_customer(request, request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, key)))
        except (PartnerCenterUnavailable, PartnerCenterThrottled, PartnerCenterAuthError) as error:
            if job.attempts < CREATE_ATTEMPTS:
                raise _TryAgain(f"Partner Center did not answer ({error.code})") from None
            await self._release(organisation_id, key, job.requested_by, error.code)
            raise DomainError(
                f"Microsoft did not answer, so {form.domain} was not created. Nothing was charged; "
                "type **add tenant** to try again later."
            ) from None
        except PartnerCenterError as error:
            await self._release(organisation_id, key, job.requested_by, error.code)
            raise DomainError(
                f"Microsoft did not create {form.domain}: {error.message} Nothing was created or charged; "
                "type **add tenant** to correct it and try again."
            ) from None
        if not customer.id:
            raise _TryAgain("Microsoft's answer had no customer id")
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
                raise DomainError("The request disappeared while Microsoft created the tenant.")
            before = _snapshot(row)
            row.status = ACTIVE
            row.customer_id = customer.id.lower()
            row.domain = customer.domain or form.domain
            row.completed_at = utcnow()
            row.admin_user = user_name
            row.credentials_password = self._box.seal(password) if password else None
            row.credentials_status = MAIL_PENDING if password else MAIL_NONE
            audit.record(
                session,
                actor=job.requested_by,
                action="tenant.create",
                organisation_id=organisation_id,
                target=row.domain,
                before=before,
                after=_snapshot(row),
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
            password = _new_password()
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
            datetime.fromisoformat(str(contact.get("accepted_at"))) if contact.get("accepted_at") else utcnow()
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
                raise _TryAgain(f"Partner Center did not answer ({error.code})") from None
            await self._mca_not_recorded(job, organisation_id, error.code)
            return False
        except PartnerCenterError as error:
            await self._mca_not_recorded(job, organisation_id, error.code)
            return False
        async with self._sessions.begin() as session:
            row = await self._row(session, organisation_id)
            if row is None:
                return False
            before = _snapshot(row)
            row.mca_accepted_at = accepted_at
            audit.record(
                session,
                actor=job.requested_by,
                action="tenant.mca_attested",
                organisation_id=organisation_id,
                target=row.domain,
                before=before,
                after=_snapshot(row),
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

    async def _deliver_credentials(
        self, organisation_id: int, job: JobView | None, *, first_name: str = ""
    ) -> ServiceView:
        """E-mail the first admin's sign-in details; a mail server that is down queues a retry job
        (or, from the operator's command, says so)."""
        async with self._sessions() as session:
            row = await self._row(session, organisation_id)
            org = await session.get(Organisation, organisation_id)
            if row is None or org is None:
                raise DomainError("The organisation's tenant is no longer recorded.")
            if row.credentials_password is None:
                return _view(row, org.name)
            mail = Mail(
                to=row.contact_email,
                subject=f"Your Microsoft 365 tenant {row.domain} is ready",
                body=CREDENTIALS_BODY.format(
                    first_name=first_name or "there", company=org.name, user_name=row.admin_user
                ),
                secrets={"password": SecretStr(self._box.open(row.credentials_password))},
                html=CREDENTIALS_HTML.format(
                    first_name=html.escape(first_name or "there"),
                    company=html.escape(org.name),
                    user_name=html.escape(row.admin_user),
                ),
            )
            organisation_name = org.name
        try:
            await self._mailer.send(mail, organisation_id=organisation_id, durable=False)
        except MailNotDelivered:
            async with self._sessions.begin() as session:
                row = await self._row(session, organisation_id)
                if row is not None and row.credentials_status != MAIL_QUEUED:
                    row.credentials_status = MAIL_QUEUED
                    audit.record(
                        session,
                        actor="system:mail",
                        action="tenant.credentials_queued",
                        organisation_id=organisation_id,
                        target=row.contact_email,
                    )
            if job is None:
                raise DomainError(
                    "The mail server still does not take the message; the password stays stored for another try."
                ) from None
            if job.kind == MAIL_JOB:
                raise _TryAgain("the mail server did not take the message") from None
            await self._jobs.submit(
                MAIL_JOB,
                idempotency_key=f"{MAIL_JOB}:{organisation_id}:{job.id}",
                payload={"first_name": first_name},
                organisation_id=organisation_id,
                requested_by=job.requested_by,
                notify_conversation_id=job.notify_conversation_id,
                max_attempts=MAIL_ATTEMPTS,
            )
        else:
            async with self._sessions.begin() as session:
                row = await self._row(session, organisation_id)
                if row is not None:
                    row.credentials_password = None  # delivered: the stored copy goes
                    row.credentials_status = MAIL_SENT
                    row.credentials_sent_at = utcnow()
                    audit.record(
                        session,
                        actor="system:mail",
                        action="tenant.credentials_sent",
                        organisation_id=organisation_id,
                        target=row.contact_email,
                    )
        async with self._sessions() as session:
            row = await self._row(session, organisation_id)
            if row is None:
                raise DomainError("The organisation's tenant is no longer recorded.")
            return _view(row, organisation_name)

    # ---- the operator's view (CLI: no caller, any organisation) -----------------------------------
    async def service_of(self, organisation_id: int) -> ServiceView | None:
        async with self._sessions() as session:
            row = await self._row(session, organisation_id)
            org = await session.get(Organisation, organisation_id)
            return _view(row, org.name if org else "") if row is not None else None

    async def resend_credentials(self, organisation_id: int, *, actor: str) -> ServiceView:
        """Deliver sign-in details still waiting for their e-mail (after the retries gave up)."""
        view = await self.service_of(organisation_id)
        if view is None or not view.active:
            raise NotFound("This organisation has no Microsoft tenant created here.")
        if view.credentials_status not in (MAIL_QUEUED, MAIL_PENDING):
            raise Conflict(
                "No e-mail is waiting: the sign-in details were delivered (or Microsoft gave none), and the "
                "stored password is gone. The admin can use “Forgot password” at https://portal.office.com."
            )
        org = await self._organisations.get_by_id(organisation_id)
        log.info("operator %s resends the tenant credentials of organisation %s", actor, organisation_id)
        return await self._deliver_credentials(organisation_id, None, first_name=org.contact_first_name)

    async def _run_mail(self, job: JobView) -> Mapping[str, Any]:
        if job.organisation_id is None:
            raise DomainError("This e-mail has no organisation.")
        try:
            view = await self._deliver_credentials(
                job.organisation_id, job, first_name=str(job.payload.get("first_name", ""))
            )
        except SecretUnreadable:
            # The key changed since the password was sealed: no retry helps; the operator can.
            org = await self._organisations.get_by_id(job.organisation_id)
            await self._alerts.raise_alert(
                "mail_undeliverable",
                f"The sign-in e-mail for {org.name}'s new tenant holds a password sealed with another key than "
                "SECRETS_KEY now holds. Add that key to SECRETS_KEY (after the current one), then run "
                f"'cspbot tenant resend-credentials {org.slug}'.",
                dedup_key=f"tenant_credentials_unreadable:{job.organisation_id}",
                severity="error",
                organisation_id=job.organisation_id,
            )
            raise DomainError(
                "The e-mail with the sign-in details could not be sent. Your reseller has been told and will send it."
            ) from None
        return {
            "message": f"The e-mail with the sign-in details for {view.domain} has now been sent to {view.mail_to}.",
            "domain": view.domain,
        }

    @staticmethod
    def _outcome(view: ServiceView, *, mca_recorded: bool = True) -> dict[str, Any]:
        """The job's result: what the follow-up message shows (no password, ever)."""
        if view.credentials_status == MAIL_SENT:
            mail = f"The sign-in details were e-mailed to {view.mail_to}."
        elif view.credentials_status == MAIL_QUEUED:
            mail = (
                f"The e-mail with the sign-in details to {view.mail_to} is on its way: the mail server did not "
                "take it yet, so it is being retried."
            )
        else:
            mail = (
                "Microsoft did not give a password for the first admin; use “Forgot password” at "
                "https://portal.office.com or ask your reseller."
            )
        if not mca_recorded:
            mail += (
                " Microsoft did not record the acceptance of the Microsoft Customer Agreement yet, and nothing "
                "can be bought without it: type **add tenant** to record it."
            )
        return {
            "message": f"Your Microsoft 365 tenant {view.domain} is ready. {mail} No charges have arisen.",
            "customer_id": view.customer_id,
            "domain": view.domain,
            "admin_user": view.admin_user,
            "mail_to": view.mail_to,
            "mail_note": mail,
            "credentials_status": view.credentials_status,
            "mca_name": view.mca_name if mca_recorded else "",
        }


__all__ = [
    "ACTIVE",
    "CREATE_JOB",
    "CREATING",
    "AddressCheck",
    "CountryProfile",
    "FormInvalid",
    "MicrosoftContact",
    "ServiceView",
    "TenantForm",
    "TenantService",
    "mask_email",
    "prefix_problem",
    "suggest_prefix",
    "validate_form",
]
