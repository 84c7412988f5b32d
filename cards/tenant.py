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
NO_CHARGES = "No charges arise at this step: subscriptions are bought separately, afterwards."
LINK_HELP = (
    "Your Microsoft 365 **global administrator** opens the link below, signs in with your tenant's admin "
    "account and accepts the invitation that makes your reseller your Microsoft partner (CSP). Nothing is "
    "bought and nothing else changes in your tenant. Once it is accepted, press **I have accepted** and "
    "your tenant shows under My services."
)

# The form's inputs in order: (input id, label, placeholder).
_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("company_name", "Company name", "Contoso Ltd"),
    ("country", "Country", ""),  # first: it decides the states offered and how the phone is read
    ("address_line1", "Address line 1", "1 Main Street"),
    ("address_line2", "Address line 2 (optional)", ""),
    ("city", "City", ""),
    ("state", "State or region", ""),
    ("postal_code", "Postal code", ""),
    ("first_name", "Contact first name", ""),
    ("last_name", "Contact last name", ""),
    ("email", "Contact e-mail (the sign-in details are sent here)", "name@company.com"),
    ("phone", "Contact phone", "+44 20 7946 0000"),
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
        element["errorMessage"] = f"{label} is required."
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
        "placeholder": "Choose a state or region",
        "choices": [{"title": title, "value": code} for code, title in choices],
    }
    chosen = next((code for code, _ in choices if code.lower() == value.lower()), "")
    if chosen:
        element["value"] = chosen
    if rules.state_required:
        element["isRequired"] = True
        element["errorMessage"] = "Choose the state or region."
    return element


def build_link_or_create_card(organisation_name: str, relationship_url: str, *, notice: str = "", rev: int = 0) -> Card:
    """The start of "add tenant": link the tenant the organisation has, or create a new one."""
    body: list[dict[str, Any]] = [heading(f"Microsoft 365 tenant for {organisation_name}")]
    if notice:
        body.append(_notice(notice))
    body += [
        text("**Already using Microsoft 365?** Link your existing tenant.", weight="Bolder"),
        text(LINK_HELP),
        text(f"Link: {relationship_url}", subtle=True),
        text("**New to Microsoft 365?** Create a new tenant: I fill in a form from your company profile."),
        text(NO_CHARGES, subtle=True),
    ]
    actions = [
        {"type": "Action.OpenUrl", "title": "Open the link", "url": relationship_url},
        submit("I have accepted — check now", VERB_CHECK_LINK, {"rev": rev}),
        submit("Create a new tenant", VERB_NEW, {"rev": rev}, style="positive"),
        submit("Cancel", VERB_CANCEL, {"rev": rev}),
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
        heading("Create a new Microsoft 365 tenant"),
        text(
            "Check the details, then press **Check and continue**. Microsoft requires the company address. "
            "The contact becomes the tenant's first admin; the sign-in details are e-mailed, never shown here.",
            subtle=True,
        ),
    ]
    if notice:
        body.append(_notice(notice))
    if errors:
        fields = formatting.plural(len(errors), "field", "fields")
        body.append(_notice(f"Please correct the {fields} marked below; nothing was sent to Microsoft."))
    where = country_name(rules.country) if rules.country else ""
    for input_id, label, placeholder in _FIELDS:
        shown = label
        if input_id == "state":
            shown = f"State or region{' (required in ' + where + ')' if rules.state_required else ''}"
        elif input_id == "postal_code" and not rules.postal_required:
            shown = "Postal code (optional here)"
        elif input_id == "phone":
            shown = f"Contact phone{' (required in ' + where + ')' if rules.phone_required else ''}"
            if rules.country:
                placeholder = example_phone(rules.country)
        required = input_id in {"company_name", "address_line1", "city", "first_name", "last_name", "email"}
        if input_id == "country":
            body.append(country_choice("country", shown, form.get("country", ""), required=True))
        elif input_id == "state" and rules.states:
            body.append(_state_choice(rules, shown, form.get("state", "")))
        else:
            body.append(_input(input_id, shown, form.get(input_id, ""), placeholder=placeholder, required=required))
        if input_id in errors:
            body.append(_error(errors[input_id]))
    if rules.registration_required or form.get("registration_number") or "registration_number" in errors:
        body.append(
            _input(
                "registration_number",
                f"Company registration number (required by Microsoft in {where or 'this country'})",
                form.get("registration_number", ""),
            )
        )
        if "registration_number" in errors:
            body.append(_error(errors["registration_number"]))
    body.append(_choices("culture", "Culture (formats)", list(rules.cultures), form.get("culture", "")))
    if "culture" in errors:
        body.append(_error(errors["culture"]))
    body.append(_choices("language", "Language", list(rules.languages), form.get("language", "")))
    if "language" in errors:
        body.append(_error(errors["language"]))
    body.append(
        _input(
            "domain_prefix",
            "Domain prefix (<prefix>.onmicrosoft.com: letters and digits, starts with a letter, at most 27)",
            form.get("domain_prefix", ""),
            required=True,
        )
    )
    if "domain_prefix" in errors:
        body.append(_error(errors["domain_prefix"]))
    actions: list[dict[str, Any]] = [submit("Check and continue", VERB_CHECK_FORM, {"rev": rev}, style="positive")]
    if taken is not None:
        body.append(
            text(
                f"**{taken.domain}** already has a Microsoft tenant. If it is your organisation's, link it "
                f"instead of creating a new one: {LINK_HELP}"
            )
        )
        body.append(text(f"Link: {taken.relationship_url}", subtle=True))
        if taken.alternative:
            body.append(text(f"Otherwise choose another prefix — for example **{taken.alternative}** is free."))
        actions.append({"type": "Action.OpenUrl", "title": "Open the link", "url": taken.relationship_url})
        actions.append(submit("I have accepted — check now", VERB_CHECK_LINK, {"rev": rev}))
    actions.append(submit("Cancel", VERB_CANCEL, {"rev": rev}))
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
        heading("Check the company address"),
        _notice(message),
        facts([("You entered", _address_lines(form, country))]),
    ]
    actions: list[dict[str, Any]] = []
    if suggestion:
        body.append(facts([("Microsoft suggests", _address_lines(suggestion, country))]))
        actions.append(submit("Use the suggested address", VERB_USE_SUGGESTION, {"rev": rev}, style="positive"))
    actions += [
        submit("Keep my address", VERB_KEEP_ADDRESS, {"rev": rev}),
        submit("Change details", VERB_EDIT, {"rev": rev}),
        submit("Cancel", VERB_CANCEL, {"rev": rev}),
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
        ("Tenant domain", f"{form.get('domain_prefix', '')}.onmicrosoft.com"),
        ("Company", form.get("company_name", "")),
        ("Address", _address_lines(form, country)),
        ("First admin", f"{form.get('first_name', '')} {form.get('last_name', '')}".strip()),
        ("Sign-in details e-mailed to", form.get("email", "")),
        ("Phone", form.get("phone", "") or "—"),
        ("Culture / language", f"{form.get('culture', '')} / {form.get('language', '')}"),
    ]
    if form.get("registration_number"):
        summary.append(("Registration number", form["registration_number"]))
    body: list[dict[str, Any]] = [
        heading("Create this Microsoft 365 tenant?"),
        facts(summary),
        _notice(NO_CHARGES, warning=False),
        text("**Microsoft Customer Agreement**", weight="Bolder"),
        text(
            "Microsoft requires the customer's acceptance of the Microsoft Customer Agreement before "
            f"anything can be bought. Read it at {MCA_URL}. The name, e-mail and today's date are "
            "recorded with Microsoft."
        ),
    ]
    body += _mca_inputs(form.get("company_name", "the company"), contact, errors)
    actions = [
        submit("Create the tenant", VERB_CONFIRM, {"rev": rev}, style="positive"),
        submit("Change details", VERB_EDIT, {"rev": rev}),
        submit("Cancel", VERB_CANCEL, {"rev": rev}),
    ]
    return card(body, actions)


def _mca_inputs(company: str, contact: Mapping[str, str], errors: Mapping[str, str]) -> list[dict[str, Any]]:
    """Who accepts the Microsoft Customer Agreement, and the acceptance itself."""
    body: list[dict[str, Any]] = []
    if errors:
        body.append(_notice("Please complete the agreement details below."))
    for input_id, label in (
        ("mca_first_name", "First name of the person accepting"),
        ("mca_last_name", "Last name of the person accepting"),
        ("mca_email", "Their e-mail"),
    ):
        body.append(_input(input_id, label, contact.get(input_id, ""), required=True))
        if input_id in errors:
            body.append(_error(errors[input_id]))
    body.append(
        {
            "type": "Input.Toggle",
            "id": "mca_accept",
            "title": f"On behalf of {company}, I accept the Microsoft Customer Agreement.",
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
        heading("Accept the Microsoft Customer Agreement"),
        text(
            f"Microsoft needs {organisation_name}'s acceptance of the Microsoft Customer Agreement for {domain} "
            f"before anything can be bought. Read it at {MCA_URL}. The name, e-mail and today's date are "
            "recorded with Microsoft."
        ),
        _notice(NO_CHARGES, warning=False),
    ]
    body += _mca_inputs(organisation_name, contact, errors or {})
    actions = [
        submit("Record the acceptance", VERB_ACCEPT_MCA, {"rev": rev}, style="positive"),
        submit("Later", VERB_CANCEL, {"rev": rev}),
    ]
    return card(body, actions)


def build_tenant_ready_card(ready: TenantReady) -> Card:
    """The follow-up once Microsoft created the tenant; on to "add subscription"."""
    rows = [
        ("Tenant domain", ready.domain),
        ("Microsoft customer id", ready.customer_id),
        ("First admin (user name)", ready.admin_user or "—"),
    ]
    if ready.mca_name:
        rows.append(("Microsoft Customer Agreement", f"accepted by {ready.mca_name}, recorded with Microsoft"))
    body = [
        heading("Your Microsoft 365 tenant is ready"),
        facts(rows),
        text(ready.mail_note),
        _notice("No charges have arisen. It now shows under My services.", warning=False),
        text("Next: add a subscription, so your people get their licences."),
    ]
    return card(
        body,
        [command_button("Add a subscription", "add subscription"), command_button("My services", "my services")],
    )


def build_my_services_card(
    service: ServiceCard | None, *, organisation_name: str, can_manage: bool, can_read_bills: bool = False
) -> Card:
    """The organisation's services: its Microsoft 365 tenant, or how to add one."""
    body: list[dict[str, Any]] = [heading(f"My services · {organisation_name}")]
    actions: list[dict[str, Any]] = []
    if service is None:
        body.append(text("You have no Microsoft 365 service with your reseller yet."))
        if can_manage:
            body.append(text("Link the tenant you already have, or create a new one: **add tenant**."))
            actions.append(command_button("Add tenant", "add tenant"))
        else:
            body.append(text("An admin of your organisation can add it."))
        return card(body, actions)
    if service.status != "active":
        body.append(_notice(f"Microsoft 365 (CSP) — {service.domain} is being created. I will tell you when it is."))
        body.append(facts([("Requested by", service.by), ("Requested", formatting.datetime_utc(service.at))]))
        return card(body)
    how = "Created here" if service.origin == "created" else "Linked (existing tenant)"
    rows = [
        ("Service", "Microsoft 365 (CSP)"),
        ("Tenant domain", service.domain or "—"),
        ("Microsoft customer id", service.customer_id or "—"),
        ("How", how),
        ("By", service.by or "—"),
        ("When", formatting.datetime_utc(service.at)),
    ]
    if service.admin_user:
        rows.append(("First admin", service.admin_user))
    if service.mca_accepted_at is not None:
        accepted = formatting.datetime_utc(service.mca_accepted_at)
        rows.append(("Customer Agreement", f"accepted by {service.mca_name}, {accepted}"))
    body.append(facts(rows))
    # Where the service is managed: the subscriptions everyone may read; users and billing by role.
    actions.append(command_button("Subscriptions", "subscriptions"))
    if can_manage:
        actions.append(command_button("Users", "users"))
        actions.append(command_button("Add a subscription", "add subscription"))
    if can_read_bills:
        actions.append(command_button("Billing", "billing"))
    return card(body, actions)


def build_already_has_tenant_card(service: ServiceCard) -> Card:
    """ "add tenant" on an organisation that has one: say so and show it."""
    shown = build_my_services_card(service, organisation_name=service.organisation_name, can_manage=True)
    shown["body"].insert(
        1,
        text(
            f"{service.organisation_name} already has its Microsoft 365 tenant, so there is nothing to add. "
            "Each organisation has one tenant."
        ),
    )
    return shown
