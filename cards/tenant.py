"""Cards of "add tenant" and "my services": link or create, the form, the address suggestion, the
confirmation (no charges, the Microsoft Customer Agreement), the outcome and My services."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cards.base import Card, card, command_button, country_choice, facts, heading, submit, text
from services import formatting
from services.countries import country_name, state_choices
from services.i18n import N_, _, ngettext
from services.phones import example_phone

VERB_CHECK_LINK = "tenant_check_link"
VERB_NEW = "tenant_new"
VERB_CHECK_FORM = "tenant_check"
VERB_USE_SUGGESTION = "tenant_use_suggestion"
VERB_KEEP_ADDRESS = "tenant_keep_address"
VERB_EDIT = "tenant_edit"
VERB_CONFIRM = "tenant_confirm"
VERB_CANCEL = "tenant_cancel"
VERB_ACCEPT_MCA = "tenant_accept_mca"

MCA_URL = "https://www.microsoft.com/licensing/docs/customeragreement"
NO_CHARGES = N_("No charges arise at this step: subscriptions are bought separately, afterwards.")
LINK_HELP = N_(
    "Your Microsoft 365 **global administrator** opens the link below, signs in with your tenant's admin "
    "account and accepts the invitation that makes your reseller your Microsoft partner (CSP). Nothing is "
    "bought and nothing else changes in your tenant. Once it is accepted, press **I have accepted** and "
    "your tenant shows under My services."
)

# The form's inputs in order: (input id, label, placeholder).
_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("company_name", N_("Company name"), N_("Contoso Ltd")),
    ("country", N_("Country"), ""),  # first: it decides the states offered and how the phone is read
    ("address_line1", N_("Address line 1"), N_("1 Main Street")),
    ("address_line2", N_("Address line 2 (optional)"), ""),
    ("city", N_("City"), ""),
    ("state", N_("State or region"), ""),
    ("postal_code", N_("Postal code"), ""),
    ("first_name", N_("Contact first name"), ""),
    ("last_name", N_("Contact last name"), ""),
    ("email", N_("Contact e-mail (the sign-in details are sent here)"), "name@company.com"),
    ("phone", N_("Contact phone"), "+44 20 7946 0000"),
)


@dataclass(frozen=True)
class FormRules:
    """What the country's rules change on the form (from Microsoft's country validation rules)."""

    country: str = ""
    state_required: bool = False
    states: Sequence[str] = ()
    postal_required: bool = True
    registration_required: bool = False
    phone_required: bool = False
    cultures: Sequence[str] = ()
    languages: Sequence[str] = ()


@dataclass(frozen=True)
class TakenDomain:
    """The domain asked for already has a Microsoft tenant."""

    domain: str
    relationship_url: str
    alternative: str | None = None


@dataclass(frozen=True)
class ServiceCard:
    """The organisation's Microsoft 365 service as My services shows it."""

    organisation_name: str
    status: str  # active | creating
    origin: str  # created | linked
    domain: str
    customer_id: str | None
    by: str
    at: datetime | None
    admin_user: str = ""
    mail_to: str = ""
    mca_name: str = ""
    mca_accepted_at: datetime | None = None


@dataclass(frozen=True)
class TenantReady:
    domain: str
    customer_id: str
    admin_user: str
    mail_note: str
    mca_name: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


def _error(message: str) -> dict[str, Any]:
    return {**text(message, color="attention"), "spacing": "None", "size": "Small"}


def _notice(message: str, *, warning: bool = True) -> dict[str, Any]:
    return text(message, weight="Bolder", color="warning" if warning else "good")


def _input(input_id: str, label: str, value: str, *, placeholder: str = "", required: bool = False) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "Input.Text", "id": input_id, "label": label, "value": value}
    if placeholder:
        element["placeholder"] = placeholder
    if required:
        element["isRequired"] = True
        element["errorMessage"] = _("{label} is required.", label=label)
    return element


def _choices(input_id: str, label: str, options: Sequence[str], value: str) -> dict[str, Any]:
    if not options:
        return _input(input_id, label, value)
    chosen = value if value in options else options[0]
    return {
        "type": "Input.ChoiceSet",
        "id": input_id,
        "label": label,
        "style": "compact",
        "value": chosen,
        "choices": [{"title": option, "value": option} for option in options],
    }


def _state_choice(rules: FormRules, label: str, value: str) -> dict[str, Any]:
    """Microsoft's states of the country (`New South Wales (NSW)`), submitting the code it expects."""
    choices = state_choices(rules.country, tuple(rules.states))
    element: dict[str, Any] = {
        "type": "Input.ChoiceSet",
        "id": "state",
        "label": label,
        "style": "compact",
        "placeholder": _("Choose a state or region"),
        "choices": [{"title": title, "value": code} for code, title in choices],
    }
    chosen = next((code for code, _unused in choices if code.lower() == value.lower()), "")
    if chosen:
        element["value"] = chosen
    if rules.state_required:
        element["isRequired"] = True
        element["errorMessage"] = _("Choose the state or region.")
    return element


def build_link_or_create_card(organisation_name: str, relationship_url: str, *, notice: str = "", rev: int = 0) -> Card:
    """The start of "add tenant": link the tenant the organisation has, or create a new one."""
    body: list[dict[str, Any]] = [
        heading(_("Microsoft 365 tenant for {organisation_name}", organisation_name=organisation_name))
    ]
    if notice:
        body.append(_notice(notice))
    body += [
        text(_("**Already using Microsoft 365?** Link your existing tenant."), weight="Bolder"),
        text(_(LINK_HELP)),
        text(_("Link: {relationship_url}", relationship_url=relationship_url), subtle=True),
        text(_("**New to Microsoft 365?** Create a new tenant: I fill in a form from your company profile.")),
        text(_(NO_CHARGES), subtle=True),
    ]
    actions = [
        {"type": "Action.OpenUrl", "title": _("Open the link"), "url": relationship_url},
        submit(_("I have accepted — check now"), VERB_CHECK_LINK, {"rev": rev}),
        submit(_("Create a new tenant"), VERB_NEW, {"rev": rev}, style="positive"),
        submit(_("Cancel"), VERB_CANCEL, {"rev": rev}),
    ]
    return card(body, actions)


def build_tenant_form_card(
    form: Mapping[str, str],
    rules: FormRules,
    *,
    errors: Mapping[str, str] | None = None,
    notice: str = "",
    taken: TakenDomain | None = None,
    rev: int = 0,
) -> Card:
    """The new-tenant form, prefilled; each problem is shown under its field, values kept."""
    errors = errors or {}
    body: list[dict[str, Any]] = [
        heading(_("Create a new Microsoft 365 tenant")),
        text(
            _(
                "Check the details, then press **Check and continue**. Microsoft requires the company address. "
                "The contact becomes the tenant's first admin; the sign-in details are e-mailed, never shown here."
            ),
            subtle=True,
        ),
    ]
    if notice:
        body.append(_notice(notice))
    if errors:
        fields = ngettext("{n} field", "{n} fields", len(errors))
        body.append(
            _notice(_("Please correct the {fields} marked below; nothing was sent to Microsoft.", fields=fields))
        )
    where = country_name(rules.country) if rules.country else ""
    for input_id, label, placeholder in _FIELDS:
        shown = _(label)
        if input_id == "state" and rules.state_required:
            shown = _("State or region (required in {country})", country=where)
        elif input_id == "postal_code" and not rules.postal_required:
            shown = _("Postal code (optional here)")
        elif input_id == "phone":
            shown = _("Contact phone (required in {country})", country=where) if rules.phone_required else _(label)
            if rules.country:
                placeholder = example_phone(rules.country)
        required = input_id in {"company_name", "address_line1", "city", "first_name", "last_name", "email"}
        if input_id == "country":
            body.append(country_choice("country", shown, form.get("country", ""), required=True))
        elif input_id == "state" and rules.states:
            body.append(_state_choice(rules, shown, form.get("state", "")))
        else:
            body.append(
                _input(
                    input_id,
                    shown,
                    form.get(input_id, ""),
                    placeholder=_(placeholder) if placeholder else "",
                    required=required,
                )
            )
        if input_id in errors:
            body.append(_error(errors[input_id]))
    if rules.registration_required or form.get("registration_number") or "registration_number" in errors:
        body.append(
            _input(
                "registration_number",
                _("Company registration number (required by Microsoft in {value})", value=where or _("this country")),
                form.get("registration_number", ""),
            )
        )
        if "registration_number" in errors:
            body.append(_error(errors["registration_number"]))
    body.append(_choices("culture", _("Culture (formats)"), list(rules.cultures), form.get("culture", "")))
    if "culture" in errors:
        body.append(_error(errors["culture"]))
    body.append(_choices("language", _("Language"), list(rules.languages), form.get("language", "")))
    if "language" in errors:
        body.append(_error(errors["language"]))
    body.append(
        _input(
            "domain_prefix",
            _("Domain prefix (<prefix>.onmicrosoft.com: letters and digits, starts with a letter, at most 27)"),
            form.get("domain_prefix", ""),
            required=True,
        )
    )
    if "domain_prefix" in errors:
        body.append(_error(errors["domain_prefix"]))
    actions: list[dict[str, Any]] = [submit(_("Check and continue"), VERB_CHECK_FORM, {"rev": rev}, style="positive")]
    if taken is not None:
        body.append(
            text(
                _(
                    "**{domain}** already has a Microsoft tenant. If it is your organisation's, link it "
                    "instead of creating a new one: {LINK_HELP}",
                    domain=taken.domain,
                    LINK_HELP=_(LINK_HELP),
                )
            )
        )
        body.append(text(_("Link: {relationship_url}", relationship_url=taken.relationship_url), subtle=True))
        if taken.alternative:
            body.append(
                text(
                    _(
                        "Otherwise choose another prefix — for example **{alternative}** is free.",
                        alternative=taken.alternative,
                    )
                )
            )
        actions.append({"type": "Action.OpenUrl", "title": _("Open the link"), "url": taken.relationship_url})
        actions.append(submit(_("I have accepted — check now"), VERB_CHECK_LINK, {"rev": rev}))
    actions.append(submit(_("Cancel"), VERB_CANCEL, {"rev": rev}))
    return card(body, actions)


def _address_lines(address: Mapping[str, str], country: str) -> str:
    parts = [
        address.get("address_line1", ""),
        address.get("address_line2", ""),
        " ".join(p for p in (address.get("postal_code", ""), address.get("city", "")) if p),
        " ".join(p for p in (address.get("state", ""), country_name(country) if country else "") if p),
    ]
    return ", ".join(p for p in parts if p)


def build_address_suggestion_card(
    form: Mapping[str, str],
    suggestion: Mapping[str, str] | None,
    message: str,
    *,
    rev: int = 0,
) -> Card:
    """Microsoft's address validation wants a look: its suggestion for one click, or keep as typed."""
    country = form.get("country", "")
    body: list[dict[str, Any]] = [
        heading(_("Check the company address")),
        _notice(message),
        facts([(_("You entered"), _address_lines(form, country))]),
    ]
    actions: list[dict[str, Any]] = []
    if suggestion:
        body.append(facts([(_("Microsoft suggests"), _address_lines(suggestion, country))]))
        actions.append(submit(_("Use the suggested address"), VERB_USE_SUGGESTION, {"rev": rev}, style="positive"))
    actions += [
        submit(_("Keep my address"), VERB_KEEP_ADDRESS, {"rev": rev}),
        submit(_("Change details"), VERB_EDIT, {"rev": rev}),
        submit(_("Cancel"), VERB_CANCEL, {"rev": rev}),
    ]
    return card(body, actions)


def build_tenant_confirm_card(
    form: Mapping[str, str],
    contact: Mapping[str, str],
    *,
    errors: Mapping[str, str] | None = None,
    rev: int = 0,
) -> Card:
    """What will be created, "no charges", and the Microsoft Customer Agreement to accept."""
    errors = errors or {}
    country = form.get("country", "")
    summary = [
        (_("Tenant domain"), f"{form.get('domain_prefix', '')}.onmicrosoft.com"),
        (_("Company"), form.get("company_name", "")),
        (_("Address"), _address_lines(form, country)),
        (_("First admin"), f"{form.get('first_name', '')} {form.get('last_name', '')}".strip()),
        (_("Sign-in details e-mailed to"), form.get("email", "")),
        (_("Phone"), form.get("phone", "") or "—"),
        (_("Culture / language"), f"{form.get('culture', '')} / {form.get('language', '')}"),
    ]
    if form.get("registration_number"):
        summary.append((_("Registration number"), form["registration_number"]))
    body: list[dict[str, Any]] = [
        heading(_("Create this Microsoft 365 tenant?")),
        facts(summary),
        _notice(_(NO_CHARGES), warning=False),
        text(_("**Microsoft Customer Agreement**"), weight="Bolder"),
        text(
            _(
                "Microsoft requires the customer's acceptance of the Microsoft Customer Agreement before "
                "anything can be bought. Read it at {MCA_URL}. The name, e-mail and today's date are "
                "recorded with Microsoft.",
                MCA_URL=MCA_URL,
            )
        ),
    ]
    body += _mca_inputs(form.get("company_name", _("the company")), contact, errors)
    actions = [
        submit(_("Create the tenant"), VERB_CONFIRM, {"rev": rev}, style="positive"),
        submit(_("Change details"), VERB_EDIT, {"rev": rev}),
        submit(_("Cancel"), VERB_CANCEL, {"rev": rev}),
    ]
    return card(body, actions)


def _mca_inputs(company: str, contact: Mapping[str, str], errors: Mapping[str, str]) -> list[dict[str, Any]]:
    """Who accepts the Microsoft Customer Agreement, and the acceptance itself."""
    body: list[dict[str, Any]] = []
    if errors:
        body.append(_notice(_("Please complete the agreement details below.")))
    for input_id, label in (
        ("mca_first_name", _("First name of the person accepting")),
        ("mca_last_name", _("Last name of the person accepting")),
        ("mca_email", _("Their e-mail")),
    ):
        body.append(_input(input_id, label, contact.get(input_id, ""), required=True))
        if input_id in errors:
            body.append(_error(errors[input_id]))
    body.append(
        {
            "type": "Input.Toggle",
            "id": "mca_accept",
            "title": _("On behalf of {company}, I accept the Microsoft Customer Agreement.", company=company),
            "value": "false",
            "valueOn": "true",
            "valueOff": "false",
            "wrap": True,
        }
    )
    if "mca_accept" in errors:
        body.append(_error(errors["mca_accept"]))
    return body


def build_mca_card(
    organisation_name: str,
    domain: str,
    contact: Mapping[str, str],
    *,
    errors: Mapping[str, str] | None = None,
    rev: int = 0,
) -> Card:
    """A linked tenant whose acceptance of the MCA Microsoft does not have yet."""
    body: list[dict[str, Any]] = [
        heading(_("Accept the Microsoft Customer Agreement")),
        text(
            _(
                "Microsoft needs {organisation_name}'s acceptance of the Microsoft Customer Agreement for "
                "{domain} before anything can be bought. Read it at {MCA_URL}. The name, e-mail and "
                "today's date are recorded with Microsoft.",
                organisation_name=organisation_name,
                domain=domain,
                MCA_URL=MCA_URL,
            )
        ),
        _notice(_(NO_CHARGES), warning=False),
    ]
    body += _mca_inputs(organisation_name, contact, errors or {})
    actions = [
        submit(_("Record the acceptance"), VERB_ACCEPT_MCA, {"rev": rev}, style="positive"),
        submit(_("Later"), VERB_CANCEL, {"rev": rev}),
    ]
    return card(body, actions)


def build_tenant_ready_card(ready: TenantReady) -> Card:
    """The follow-up once Microsoft created the tenant; on to "add subscription"."""
    rows = [
        (_("Tenant domain"), ready.domain),
        (_("Microsoft customer id"), ready.customer_id),
        (_("First admin (user name)"), ready.admin_user or "—"),
    ]
    if ready.mca_name:
        rows.append(
            (
                _("Microsoft Customer Agreement"),
                _("accepted by {mca_name}, recorded with Microsoft", mca_name=ready.mca_name),
            )
        )
    body = [
        heading(_("Your Microsoft 365 tenant is ready")),
        facts(rows),
        text(ready.mail_note),
        _notice(_("No charges have arisen. It now shows under My services."), warning=False),
        text(_("Next: add a subscription, so your people get their licences.")),
    ]
    return card(
        body,
        [
            command_button(_("Add a subscription"), "add subscription"),
            command_button(_("My services"), "my services"),
        ],
    )


def build_my_services_card(
    service: ServiceCard | None, *, organisation_name: str, can_manage: bool, can_read_bills: bool = False
) -> Card:
    """The organisation's services: its Microsoft 365 tenant, or how to add one."""
    body: list[dict[str, Any]] = [heading(_("My services · {organisation_name}", organisation_name=organisation_name))]
    actions: list[dict[str, Any]] = []
    if service is None:
        body.append(text(_("You have no Microsoft 365 service with your reseller yet.")))
        if can_manage:
            body.append(text(_("Link the tenant you already have, or create a new one: **add tenant**.")))
            actions.append(command_button(_("Add tenant"), "add tenant"))
        else:
            body.append(text(_("An admin of your organisation can add it.")))
        return card(body, actions)
    if service.status != "active":
        body.append(
            _notice(
                _("Microsoft 365 (CSP) — {domain} is being created. I will tell you when it is.", domain=service.domain)
            )
        )
        body.append(facts([(_("Requested by"), service.by), (_("Requested"), formatting.datetime_utc(service.at))]))
        return card(body)
    how = _("Created here") if service.origin == "created" else _("Linked (existing tenant)")
    rows = [
        (_("Service"), _("Microsoft 365 (CSP)")),
        (_("Tenant domain"), service.domain or "—"),
        (_("Microsoft customer id"), service.customer_id or "—"),
        (_("How"), how),
        (_("By"), service.by or "—"),
        (_("When"), formatting.datetime_utc(service.at)),
    ]
    if service.admin_user:
        rows.append((_("First admin"), service.admin_user))
    if service.mca_accepted_at is not None:
        accepted = formatting.datetime_utc(service.mca_accepted_at)
        rows.append(
            (
                _("Customer Agreement"),
                _("accepted by {mca_name}, {accepted}", mca_name=service.mca_name, accepted=accepted),
            )
        )
    body.append(facts(rows))
    # Where the service is managed: the subscriptions everyone may read; users and billing by role.
    actions.append(command_button(_("Subscriptions"), "subscriptions"))
    if can_manage:
        actions.append(command_button(_("Users"), "users"))
        actions.append(command_button(_("Add a subscription"), "add subscription"))
    if can_read_bills:
        actions.append(command_button(_("Billing"), "billing"))
    return card(body, actions)


def build_already_has_tenant_card(service: ServiceCard) -> Card:
    """ "add tenant" on an organisation that has one: say so and show it."""
    shown = build_my_services_card(service, organisation_name=service.organisation_name, can_manage=True)
    shown["body"].insert(
        1,
        text(
            _(
                "{organisation_name} already has its Microsoft 365 tenant, so there is nothing to add. "
                "Each organisation has one tenant.",
                organisation_name=service.organisation_name,
            )
        ),
    )
    return shown
