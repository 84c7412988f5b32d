"""The tenant form: Microsoft's country rules, the prefix rules, every problem reported per field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from services.countries import country_name
from services.errors import InvalidInput
from services.i18n import _
from services.mail import is_mail_address
from services.partner_center.models import (
    CountryValidationRules,
)
from services.phones import InvalidPhone, normalise_phone

DOMAIN_SUFFIX = ".onmicrosoft.com"
# Where Microsoft's rules resource gives no field for it: the countries whose customers need an
# organisation registration number (and a phone number) — Microsoft's list for 600049/600051,
# plus Brazil (CNPJ). A rules answer carrying the sandbox's extension object wins over this list.
REGISTRATION_COUNTRIES = frozenset("AM AZ BY HU KZ KG MD RU TJ UZ UA BR".split())
PHONE_COUNTRIES = frozenset("AM AZ BY HU KZ KG MD RU TJ UZ UA".split())

_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,26}$")
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
        first = next(iter(errors.values()), _("Please check the form."))
        super().__init__(first, field=next(iter(errors), None))
        self.errors = dict(errors)
        self.form = form  # the form as normalised so far, to show again with the errors
        self.profile = profile


def prefix_problem(prefix: str) -> str | None:
    """Microsoft's rule for `<prefix>.onmicrosoft.com`, explained for what was typed."""
    if not prefix:
        return _("Choose a domain prefix, e.g. contoso for contoso.onmicrosoft.com.")
    if "." in prefix:
        return _("Type only the prefix, without dots: for contoso.onmicrosoft.com type contoso.")
    if any(ch.isspace() for ch in prefix):
        return _("The prefix cannot contain spaces.")
    if len(prefix) > 27:
        return _("The prefix can have at most 27 characters (this one has {len}).", len=len(prefix))
    if not prefix[0].isalpha():
        return _("The prefix must start with a letter.")
    if not _PREFIX.match(prefix.lower()):
        return _("The prefix can only have letters (a-z) and digits.")
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
        "company_name": _("Enter the company name."),
        "address_line1": _("Enter the street address; Microsoft requires it."),
        "first_name": _("Enter the contact's first name."),
        "last_name": _("Enter the contact's last name."),
        "email": _("Enter the contact's e-mail address; the sign-in details are sent there."),
    }
    for name, message in required.items():
        if not getattr(form, name):
            errors[name] = message
    if profile.city_required and not form.city:
        errors["city"] = _("Enter the city; Microsoft requires it.")
    state = form.state
    if profile.states:
        match = next((s for s in profile.states if s.lower() == state.lower()), None)
        state = match or state
    country = country_name(profile.country)
    if profile.state_required and not state:
        errors["state"] = _("Choose the state or region; it is required in {country}.", country=country)
    elif state and profile.states and state not in profile.states:
        errors["state"] = _(
            "{state} is not a state of {country}; choose one from the list.", state=state, country=country
        )
    postal = form.postal_code.upper() if profile.country in {"GB", "CA", "IE", "NL"} else form.postal_code
    if profile.postal_required and not postal:
        errors["postal_code"] = _("Enter the postal code; it is required in {country}.", country=country)
    elif postal and profile.postal_pattern and not _postal_matches(profile.postal_pattern, postal):
        errors["postal_code"] = _("{postal} is not a postal code of {country}.", postal=postal, country=country)
    email = form.email.lower()
    if email and not is_mail_address(email):
        errors["email"] = _("{email} is not a valid e-mail address.", email=form.email)
    phone = form.phone
    if not phone and profile.phone_required:
        errors["phone"] = _("Enter a phone number; Microsoft requires one in {country}.", country=country)
    elif phone:
        try:
            phone = normalise_phone(phone, profile.country)
        except InvalidPhone as invalid:
            errors["phone"] = str(invalid)
            phone = form.phone  # kept as typed, to correct
    registration = form.registration_number
    if profile.registration_required:
        if not registration:
            errors["registration_number"] = _(
                "Microsoft requires the company registration number for a company in {country}.", country=country
            )
        elif profile.registration_pattern and not re.match(profile.registration_pattern, registration):
            errors["registration_number"] = _("That registration number is not in the format this country uses.")
    else:
        registration = ""  # Microsoft refuses one where the country does not use it (600002)
    culture = next((c for c in profile.cultures if c.lower() == form.culture.lower()), "")
    if not culture:
        errors["culture"] = _("Choose one of the cultures Microsoft supports in {country}.", country=country)
    language = next((lang for lang in profile.languages if lang.lower() == form.language.lower()), "")
    if not language:
        errors["language"] = _("Choose one of the languages Microsoft supports in {country}.", country=country)
    problem = prefix_problem(form.domain_prefix)
    if problem:
        errors["domain_prefix"] = problem
    for name, limit in _LIMITS.items():
        if name not in errors and len(getattr(form, name)) > limit:
            errors[name] = _("At most {limit} characters.", limit=limit)
    cleaned = replace(
        form,
        country=profile.country,
        state=state,
        postal_code=postal,
        email=email,
        phone=phone,
        culture=culture or form.culture,
        language=language or form.language,
        registration_number=registration,
        domain_prefix=form.domain_prefix.lower() if not problem else form.domain_prefix,
    )
    return cleaned, errors


def phone_digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def mask_email(address: str) -> str:
    """`c***@contoso.com`: enough to recognise, not enough to harvest."""
    local, _unused, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
