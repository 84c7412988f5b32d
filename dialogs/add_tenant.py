"""Tasks "add tenant" and "my services".

"add tenant" is a loop of two steps over a small state (`options`, kept in the dialog state):
    show_step    render the card of the current stage and wait for its submit
    handle_step  act on the submit; go to the next stage (replace the loop) or end

    stage    card                    submits → next stage
    start    link or create          check link → (linked: My services, end) | new → form
    form     the prefilled form      check → form (errors, taken domain) | address | confirm
    address  Microsoft's suggestion  use suggestion / keep → confirm | edit → form
    confirm  summary + MCA           create → job submitted, "working on it", end | edit → form

Every card carries the state's revision; a submit from an older card shows the current one again.
The outcome of the job arrives later as a card (`render_tenant_job`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import MessageFactory

from cards.tenant import (
    VERB_ACCEPT_MCA,
    VERB_CANCEL,
    VERB_CHECK_FORM,
    VERB_CHECK_LINK,
    VERB_CONFIRM,
    VERB_EDIT,
    VERB_KEEP_ADDRESS,
    VERB_NEW,
    VERB_USE_SUGGESTION,
    FormRules,
    ServiceCard,
    TakenDomain,
    TenantReady,
    build_address_suggestion_card,
    build_already_has_tenant_card,
    build_link_or_create_card,
    build_mca_card,
    build_my_services_card,
    build_tenant_confirm_card,
    build_tenant_form_card,
    build_tenant_ready_card,
)
from dialogs.base import CARD_PROMPT, TaskDialog, caller_of, card_activity, stored
from dialogs.sdk import DialogTurnResult, WaterfallStepContext
from services.access import Caller
from services.db import utcnow
from services.errors import Conflict
from services.i18n import N_, _
from services.jobs import SUCCEEDED, JobView
from services.mail import is_mail_address
from services.partner_center import PartnerCenterError
from services.roles import Permission
from services.tenants import (
    CREATE_JOB,
    MAIL_JOB,
    CountryProfile,
    FormInvalid,
    MicrosoftContact,
    ServiceView,
    TenantForm,
    TenantService,
)

ADD_TENANT_DIALOG = "add_tenant"
MY_SERVICES_DIALOG = "my_services"
FORM_KEYS = tuple(TenantForm.__dataclass_fields__)
MCA_NAME_LIMIT = 64  # each; "first last" is kept as the acceptance's name (200 characters at most)


def service_card(view: ServiceView) -> ServiceCard:
    return ServiceCard(
        organisation_name=view.organisation_name,
        status=view.status,
        origin=view.origin,
        domain=view.domain,
        customer_id=view.customer_id,
        by=view.requested_by,
        at=view.completed_at or view.requested_at,
        admin_user=view.admin_user,
        mail_to=view.mail_to,
        mca_name=view.mca_name,
        mca_accepted_at=view.mca_accepted_at,
    )


def _rules(profile: dict[str, Any] | None, country: str = "") -> FormRules:
    if not profile:
        return FormRules(country=country)
    p = CountryProfile.from_dict(profile)
    return FormRules(
        country=p.country,
        state_required=p.state_required,
        states=p.states,
        postal_required=p.postal_required,
        registration_required=p.registration_required,
        phone_required=p.phone_required,
        cultures=p.cultures,
        languages=p.languages,
    )


class AddTenantDialog(TaskDialog):
    title = N_("add tenant")

    def __init__(self, tenants: TenantService) -> None:
        super().__init__(ADD_TENANT_DIALOG, [self.show_step, self.handle_step])
        self._tenants = tenants
        self._loop_id = f"{ADD_TENANT_DIALOG}.steps"

    # ---- the loop -------------------------------------------------------------------------------
    async def show_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        state: dict[str, Any] = dict(step.options) if isinstance(step.options, dict) else {}
        caller = caller_of(step.context)
        if not state:
            state = await self._first_state(step, caller)
            if not state:
                return await step.end_dialog()
        step.values["state"] = state
        return await step.prompt(CARD_PROMPT, self.prompt_card(self._card(state)))

    async def handle_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        state = stored(step, "state")
        submitted = step.result if isinstance(step.result, dict) else {}
        verb = str(submitted.get("verb", ""))
        caller = caller_of(step.context)
        if verb == VERB_CANCEL:
            await step.context.send_activity(_("Cancelled add tenant. Nothing was created."))
            return await step.end_dialog()
        if submitted.get("rev") != state.get("rev"):
            return await self._again(step, state, notice=_("That card is out of date; please use this one."))
        handler = {
            VERB_CHECK_LINK: self._check_link,
            VERB_NEW: self._new,
            VERB_CHECK_FORM: self._check_form,
            VERB_USE_SUGGESTION: self._use_suggestion,
            VERB_KEEP_ADDRESS: self._keep_address,
            VERB_EDIT: self._edit,
            VERB_CONFIRM: self._confirm,
            VERB_ACCEPT_MCA: self._accept_mca,
        }.get(verb)
        if handler is None:
            return await self._again(step, state, notice=_("Please use the buttons on this card."))
        return await handler(step, caller, state, submitted)

    async def _again(self, step: WaterfallStepContext, state: dict[str, Any], **changes: Any) -> DialogTurnResult:
        """Show the card of `state` (with `changes`) again: a new revision, the old cards go stale."""
        new_state = {**state, "notice": "", "errors": {}, **changes, "rev": int(state.get("rev", 0)) + 1}
        return await step.replace_dialog(self._loop_id, new_state)

    # ---- stages ---------------------------------------------------------------------------------
    async def _first_state(self, step: WaterfallStepContext, caller: Caller) -> dict[str, Any]:
        caller.require(Permission.MANAGE_SERVICES)
        existing = await self._tenants.my_service(caller)
        if existing is not None:
            if existing.active:
                await step.context.send_activity(card_activity(build_already_has_tenant_card(service_card(existing))))
                return await self._mca_state(caller, existing)
            else:
                await step.context.send_activity(
                    _(
                        "Your tenant {domain} is being created; I will tell you here when it is ready.",
                        domain=existing.domain,
                    )
                )
            return {}
        linked = await self._tenants.link_existing(caller)
        if linked is not None:
            await self._tell_linked(step, linked)
            return await self._mca_state(caller, linked)
        return {
            "stage": "start",
            "rev": 1,
            "organisation": caller.organisation_name,
            "link": await self._tenants.relationship_link(),
        }

    async def _mca_state(self, caller: Caller, view: ServiceView) -> dict[str, Any]:
        """A linked tenant whose MCA acceptance Microsoft lacks: ask for it (nothing can be bought
        without it). Empty when there is nothing to ask."""
        if await self._tenants.mca_recorded(caller):
            return {}
        form, _unused = await self._tenants.prefilled_form(caller)
        return {
            "stage": "mca",
            "rev": 1,
            "organisation": caller.organisation_name,
            "domain": view.domain,
            "contact": {"mca_first_name": form.first_name, "mca_last_name": form.last_name, "mca_email": form.email},
        }

    async def _tell_linked(self, step: WaterfallStepContext, view: ServiceView) -> None:
        await step.context.send_activity(
            _(
                "Your existing tenant {domain} is now linked to your reseller: it shows under My services.",
                domain=view.domain,
            )
        )
        await step.context.send_activity(
            card_activity(
                build_my_services_card(
                    service_card(view), organisation_name=view.organisation_name, can_manage=True, can_read_bills=True
                )
            )
        )

    async def _check_link(
        self, step: WaterfallStepContext, caller: Caller, state: dict[str, Any], _submitted: dict[str, Any]
    ) -> DialogTurnResult:
        linked = await self._tenants.link_existing(caller)
        if linked is not None:
            await self._tell_linked(step, linked)
            mca = await self._mca_state(caller, linked)
            if mca:
                return await step.replace_dialog(self._loop_id, mca)
            return await step.end_dialog()
        return await self._again(
            step,
            {**state, "link": state.get("link") or await self._tenants.relationship_link()},
            notice=_(
                "Microsoft does not list your tenant as a customer of your reseller yet. Once your global "
                "admin has accepted the invitation, press **I have accepted** again (it can take a few minutes)."
            ),
        )

    async def _new(
        self, step: WaterfallStepContext, caller: Caller, state: dict[str, Any], _: dict[str, Any]
    ) -> DialogTurnResult:
        form, profile = await self._tenants.prefilled_form(caller)
        return await self._again(
            step,
            {**state, "stage": "form", "form": form.as_dict(), "profile": profile.as_dict() if profile else None},
        )

    async def _check_form(
        self, step: WaterfallStepContext, caller: Caller, state: dict[str, Any], submitted: dict[str, Any]
    ) -> DialogTurnResult:
        values = {key: submitted.get(key, "") for key in FORM_KEYS}
        previous = state.get("profile") or {}
        if str(values["country"]).upper() != previous.get("country") and values["state"] in (
            previous.get("states") or ()
        ):
            values["state"] = ""  # chosen from the old country's list: the new country's list applies
        base = {**state, "stage": "form", "form": TenantForm.from_mapping(values).as_dict(), "taken": None}
        try:
            form, profile = await self._tenants.check_form(caller, values)
        except FormInvalid as invalid:
            if invalid.form is not None:
                base["form"] = invalid.form.as_dict()
            if invalid.profile is not None:
                base["profile"] = invalid.profile.as_dict()
                if invalid.profile.country != (state.get("profile") or {}).get("country"):
                    # Another country: its cultures and languages apply, pre-selected.
                    defaults = self._tenants.with_country_defaults(
                        TenantForm.from_mapping(base["form"]), invalid.profile
                    )
                    base["form"] = defaults.as_dict()
            return await self._again(step, base, errors=invalid.errors)
        base.update(form=form.as_dict(), profile=profile.as_dict())
        if not await self._tenants.domain_available(form.domain_prefix):
            alternative = await self._tenants.free_alternative(form.domain_prefix, form.company_name)
            taken = {
                "domain": form.domain,
                "link": state.get("link") or await self._tenants.relationship_link(),
                "alternative": alternative,
            }
            return await self._again(
                step,
                {**base, "taken": taken},
                errors={
                    "domain_prefix": _(
                        "{domain} already has a Microsoft tenant; choose another prefix.", domain=form.domain
                    )
                },
            )
        check = await self._tenants.check_address(form)
        if check.ok:
            return await self._to_confirm(step, base, form)
        if check.suggestion is None and check.status in ("None", "NotValidated"):
            return await self._again(step, base, errors={"address_line1": check.message})
        return await self._again(
            step, {**base, "stage": "address", "suggestion": check.suggestion, "address_message": check.message}
        )

    async def _use_suggestion(
        self, step: WaterfallStepContext, caller: Caller, state: dict[str, Any], _: dict[str, Any]
    ) -> DialogTurnResult:
        suggestion = state.get("suggestion") or {}
        form = replace(TenantForm.from_mapping(state.get("form") or {}), **{k: str(v) for k, v in suggestion.items()})
        try:
            form, _profile = await self._tenants.check_form(caller, form.as_dict())
        except FormInvalid as invalid:
            return await self._again(step, {**state, "stage": "form", "form": form.as_dict()}, errors=invalid.errors)
        return await self._to_confirm(step, state, form)

    async def _keep_address(
        self, step: WaterfallStepContext, _caller: Caller, state: dict[str, Any], _: dict[str, Any]
    ) -> DialogTurnResult:
        return await self._to_confirm(step, state, TenantForm.from_mapping(state.get("form") or {}))

    async def _edit(
        self, step: WaterfallStepContext, _caller: Caller, state: dict[str, Any], _: dict[str, Any]
    ) -> DialogTurnResult:
        return await self._again(step, {**state, "stage": "form", "taken": None})

    async def _to_confirm(
        self, step: WaterfallStepContext, state: dict[str, Any], form: TenantForm
    ) -> DialogTurnResult:
        contact = state.get("contact") or {
            "mca_first_name": form.first_name,
            "mca_last_name": form.last_name,
            "mca_email": form.email,
        }
        return await self._again(step, {**state, "stage": "confirm", "form": form.as_dict(), "contact": contact})

    async def _confirm(
        self, step: WaterfallStepContext, caller: Caller, state: dict[str, Any], submitted: dict[str, Any]
    ) -> DialogTurnResult:
        if state.get("stage") != "confirm":
            return await self._again(step, state, notice=_("Please use this card."))
        contact, errors = _read_acceptance(submitted)
        if errors:
            return await self._again(step, {**state, "contact": contact}, errors=errors)
        acceptance = MicrosoftContact(
            contact["mca_first_name"], contact["mca_last_name"], contact["mca_email"], accepted_at=utcnow()
        )
        form = TenantForm.from_mapping(state.get("form") or {})
        conversation = step.context.activity.conversation
        try:
            job, started = await self._tenants.start_creation(
                caller, form.as_dict(), acceptance, notify_conversation_id=conversation.id if conversation else None
            )
        except FormInvalid as invalid:
            return await self._again(step, {**state, "stage": "form"}, errors=invalid.errors)
        except Conflict as conflict:
            await step.context.send_activity(conflict.message)
            return await step.end_dialog()
        if started:
            await step.context.send_activity(
                _(
                    "Working on it: Microsoft is creating **{domain}**. It usually takes under a minute; I "
                    "will write here when it is ready. No charges arise at this step.",
                    domain=form.domain,
                )
            )
        else:
            await step.context.send_activity(
                _(
                    "Your tenant is already being created (request #{id}); I will write here when it is ready.",
                    id=job.id,
                )
            )
        return await step.end_dialog()

    async def _accept_mca(
        self, step: WaterfallStepContext, caller: Caller, state: dict[str, Any], submitted: dict[str, Any]
    ) -> DialogTurnResult:
        if state.get("stage") != "mca":
            return await self._again(step, state, notice=_("Please use this card."))
        contact, errors = _read_acceptance(submitted)
        if errors:
            return await self._again(step, {**state, "contact": contact}, errors=errors)
        view = await self._tenants.attest_mca(
            caller,
            MicrosoftContact(contact["mca_first_name"], contact["mca_last_name"], contact["mca_email"], utcnow()),
        )
        await step.context.send_activity(_("Recorded with Microsoft: you can buy subscriptions now."))
        await step.context.send_activity(
            card_activity(
                build_my_services_card(
                    service_card(view), organisation_name=view.organisation_name, can_manage=True, can_read_bills=True
                )
            )
        )
        return await step.end_dialog()

    # ---- cards ----------------------------------------------------------------------------------
    def _card(self, state: dict[str, Any]) -> dict[str, Any]:
        stage = state.get("stage")
        rev = int(state.get("rev", 0))
        form = state.get("form") or {}
        if stage == "form":
            taken = state.get("taken")
            return build_tenant_form_card(
                form,
                _rules(state.get("profile"), form.get("country", "")),
                errors=state.get("errors") or {},
                notice=state.get("notice", ""),
                taken=TakenDomain(taken["domain"], taken["link"], taken.get("alternative")) if taken else None,
                rev=rev,
            )
        if stage == "address":
            return build_address_suggestion_card(
                form, state.get("suggestion"), state.get("address_message", ""), rev=rev
            )
        if stage == "mca":
            return build_mca_card(
                self._organisation_name(state),
                str(state.get("domain", "")),
                state.get("contact") or {},
                errors=state.get("errors"),
                rev=rev,
            )
        if stage == "confirm":
            return build_tenant_confirm_card(form, state.get("contact") or {}, errors=state.get("errors"), rev=rev)
        return build_link_or_create_card(
            self._organisation_name(state), state.get("link", ""), notice=state.get("notice", ""), rev=rev
        )

    @staticmethod
    def _organisation_name(state: dict[str, Any]) -> str:
        return str(state.get("organisation") or _("your organisation"))


def _read_acceptance(submitted: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Who accepts the MCA, from the card, and what is missing."""
    contact = {key: " ".join(str(submitted.get(key, "")).split()) for key in ("mca_first_name", "mca_last_name")}
    contact["mca_email"] = str(submitted.get("mca_email", "")).strip().lower()
    errors: dict[str, str] = {}
    missing = {
        "mca_first_name": N_("Enter the first name of the person accepting."),
        "mca_last_name": N_("Enter the last name of the person accepting."),
    }
    too_long = {
        "mca_first_name": N_("The first name is at most {limit} characters."),
        "mca_last_name": N_("The last name is at most {limit} characters."),
    }
    for key in ("mca_first_name", "mca_last_name"):
        if not contact[key]:
            errors[key] = _(missing[key])
        elif len(contact[key]) > MCA_NAME_LIMIT:
            errors[key] = _(too_long[key], limit=MCA_NAME_LIMIT)
    if not is_mail_address(contact["mca_email"]):
        errors["mca_email"] = _("Enter a valid e-mail address.")
    if str(submitted.get("mca_accept", "")).lower() != "true":
        errors["mca_accept"] = _("Microsoft requires the agreement to be accepted; tick the box.")
    return contact, errors


class MyServicesDialog(TaskDialog):
    title = N_("my services")

    def __init__(self, tenants: TenantService) -> None:
        super().__init__(MY_SERVICES_DIALOG, [self.show_step])
        self._tenants = tenants

    async def show_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        caller = caller_of(step.context)
        view = await self._tenants.my_service(caller)
        if view is None and caller.can(Permission.MANAGE_SERVICES):
            try:  # a relationship accepted since shows up here too
                view = await self._tenants.link_existing(caller)
            except (Conflict, PartnerCenterError):  # Microsoft unreachable: show what is known
                view = await self._tenants.my_service(caller)
        shown = service_card(view) if view is not None else None
        await step.context.send_activity(
            card_activity(
                build_my_services_card(
                    shown,
                    organisation_name=caller.organisation_name,
                    can_manage=caller.can(Permission.MANAGE_SERVICES),
                    can_read_bills=caller.can(Permission.READ_BILLING),
                )
            )
        )
        return await step.end_dialog()


def render_tenant_job(job: JobView) -> Activity:
    """The follow-up of `tenant.create`: the ready card, or what went wrong."""
    result = job.result or {}
    if job.status != SUCCEEDED:
        return MessageFactory.text(_("The tenant was not created. {error}", error=job.error_message))
    ready = TenantReady(
        domain=str(result.get("domain", "")),
        customer_id=str(result.get("customer_id", "")),
        admin_user=str(result.get("admin_user", "")),
        mail_note=str(result.get("mail_note", "")),
        mca_name=str(result.get("mca_name", "")),
    )
    return card_activity(build_tenant_ready_card(ready))


def render_credentials_mail_job(job: JobView) -> Activity:
    if job.status == SUCCEEDED:
        return MessageFactory.text(
            str((job.result or {}).get("message") or _("The sign-in details have been e-mailed."))
        )
    return MessageFactory.text(
        _(
            "The e-mail with your tenant's sign-in details still could not be delivered. Your reseller has been "
            "alerted and will make sure it reaches you."
        )
    )


def tenant_job_renderers() -> dict[str, Callable[[JobView], Activity]]:
    """How the outcomes of this feature's durable jobs are told (see bot/job_notices.py)."""
    return {CREATE_JOB: render_tenant_job, MAIL_JOB: render_credentials_mail_job}
