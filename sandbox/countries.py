"""Country rules, address validation and the checks Partner Center runs before creating a customer.

Country rules have the shape of `GET /v1/countryvalidationrules/{iso2}` (fixture
country-validation-rules.json: the Portuguese body is Microsoft's). Postal-code patterns are the
countries' real formats. Microsoft's rules resource has no field saying whether an organisation
registration number is required, so that lives in a clearly named `sandboxExtensions` object.
Registration numbers are required in the countries Microsoft lists for errors 600049/600051
(Armenia … Ukraine; the sandbox carries Hungary and Ukraine) and, as partners report, Brazil (CNPJ).

Address validation (`POST /v1/validations/address`) is deterministic. The rules, first match wins:

1. Country without sandbox rules → `NotValidated`.
2. Postal code required by the country but missing → `NotValidated`.
3. No `addressLine1`; postal code not matching the country's `postalCodeRegex`; a required city or
   state missing; or a state outside the country's `supportedStatesList` → `None` (not found).
4. `addressLine1` without any digit (no house number) → `PremisesPartial`.
5. `addressLine1` with a misspelling (Microsft, Stret, Raod, Avenu) or an abbreviated street type as
   a whole word (St, Rd, Ave, Blvd, Dr, Ln, with or without a dot) → `InteractionRequired`, with one
   suggested address that spells the street out.
6. A post-office box (PO Box, P.O. Box, Postfach, Apartado) → `Verified` (valid, not shippable).
7. Anything else → `VerifiedShippable`; the suggestion is the normalised address, and a US 5-digit
   ZIP gains a deterministic ZIP+4 extension (as Microsoft's example turns 98052 into 98052-8300).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sandbox.errors import (
    PHONE_NUMBER_MISSING,
    REGISTRATION_NUMBER_INVALID,
    REGISTRATION_NUMBER_MISSING,
    REGISTRATION_NUMBER_UNSUPPORTED,
    SandboxError,
    invalid_property,
)

_US_STATES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
).split()
_CA_PROVINCES = "AB BC MB NB NL NS NT NU ON PE QC SK YT".split()
_AU_STATES = "ACT NSW NT QLD SA TAS VIC WA".split()
_IN_STATES = (
    "AN AP AR AS BR CH CT DN DL GA GJ HR HP JK JH KA KL LA LD MP MH MN ML MZ NL OR PY PB RJ SK TN TG TR UP UT WB"
).split()
_BR_STATES = "AC AL AP AM BA CE DF ES GO MA MT MS MG PA PB PR PE PI RJ RN RS RO RR SC SP SE TO".split()


def _rules(
    iso2: str,
    *,
    cultures: list[str],
    languages: list[str],
    postal: str,
    calling: str,
    states: list[str] | None = None,
    postal_required: bool = True,
    vat: tuple[str, str, str] | None = None,
    registration: str | None = None,
    phone_required: bool = False,
) -> dict[str, Any]:
    """One country's rules in Microsoft's shape, plus the sandbox's extension object."""
    tax_format, tax_sample, vat_regex = vat or ("", "", "")
    return {
        "iso2Code": iso2,
        "defaultCulture": cultures[0],
        "isStateRequired": states is not None,
        "supportedStatesList": states or [],
        "supportedLanguagesList": languages,
        "supportedCulturesList": cultures,
        "isPostalCodeRequired": postal_required,
        "postalCodeRegex": postal,
        "isCityRequired": True,
        "isVatIdSupported": vat is not None,
        "taxIdFormat": tax_format,
        "taxIdSample": tax_sample,
        "vatIdRegex": vat_regex,
        "isTaxIdSupported": False,
        "isTaxIdOptional": False,
        "countryCallingCodesList": [calling],
        "attributes": {"objectType": "CountryValidationRules"},
        "sandboxExtensions": {
            "organizationRegistrationNumberRequired": registration is not None,
            "organizationRegistrationNumberRegex": registration or "",
            "phoneNumberRequired": phone_required,
        },
    }


COUNTRY_RULES: dict[str, dict[str, Any]] = {
    rules["iso2Code"]: rules
    for rules in (
        _rules(
            "US", cultures=["en-US"], languages=["en", "es"], postal=r"^\d{5}(-\d{4})?$", calling="1", states=_US_STATES
        ),
        _rules(
            "CA",
            cultures=["en-CA", "fr-CA", "en-US"],
            languages=["en", "fr"],
            postal=r"^[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d$",
            calling="1",
            states=_CA_PROVINCES,
        ),
        _rules(
            "GB",
            cultures=["en-GB", "en-US"],
            languages=["en"],
            postal=r"^([A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}|GIR ?0AA)$",
            calling="44",
            vat=("GB#########", "GB980780684", r"^GB(\d{9}|\d{12}|GD\d{3}|HA\d{3})$"),
        ),
        _rules(
            "IE",
            cultures=["en-IE", "en-GB", "en-US"],
            languages=["en", "ga"],
            postal=r"^([AC-FHKNPRTV-Y]\d{2}|D6W) ?[0-9AC-FHKNPRTV-Y]{4}$",
            calling="353",
            postal_required=False,
            vat=("IE#######X", "IE6388047V", r"^IE\d{7}[A-W][A-IW]?$"),
        ),
        _rules("AU", cultures=["en-AU", "en-US"], languages=["en"], postal=r"^\d{4}$", calling="61", states=_AU_STATES),
        _rules(
            "DE",
            cultures=["de-DE", "en-US"],
            languages=["de", "en"],
            postal=r"^\d{5}$",
            calling="49",
            vat=("DE#########", "DE136695976", r"^DE\d{9}$"),
        ),
        _rules(
            "FR",
            cultures=["fr-FR", "en-US"],
            languages=["fr", "en"],
            postal=r"^\d{5}$",
            calling="33",
            vat=("FRXX#########", "FR40303265045", r"^FR[0-9A-HJ-NP-Z]{2}\d{9}$"),
        ),
        _rules(
            "NL",
            cultures=["nl-NL", "en-US"],
            languages=["nl", "en"],
            postal=r"^\d{4} ?[A-Z]{2}$",
            calling="31",
            vat=("NL#########B##", "NL004495445B01", r"^NL\d{9}B\d{2}$"),
        ),
        _rules(
            "SE",
            cultures=["sv-SE", "en-US"],
            languages=["sv", "en"],
            postal=r"^\d{3} ?\d{2}$",
            calling="46",
            vat=("SE############", "SE556703748501", r"^SE\d{12}$"),
        ),
        _rules(
            "PT",
            cultures=["pt-PT", "en-US"],
            languages=["en", "pt-PT"],
            postal=r"^\d{4}(-\d{3})?$",
            calling="351",
            vat=("PT#########", "PT980152267", r"^PT[\d]{9,9}$"),
        ),
        _rules(
            "IN",
            cultures=["en-IN", "en-US"],
            languages=["en", "hi"],
            postal=r"^\d{6}$",
            calling="91",
            states=_IN_STATES,
        ),
        _rules("JP", cultures=["ja-JP", "en-US"], languages=["ja", "en"], postal=r"^\d{3}-?\d{4}$", calling="81"),
        _rules(
            "BR",
            cultures=["pt-BR", "en-US"],
            languages=["pt-BR", "en"],
            postal=r"^\d{5}-?\d{3}$",
            calling="55",
            states=_BR_STATES,
            registration=r"^\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}$",
        ),
        _rules(
            "HU",
            cultures=["hu-HU", "en-US"],
            languages=["hu", "en"],
            postal=r"^\d{4}$",
            calling="36",
            vat=("HU########", "HU12892312", r"^HU\d{8}$"),
            registration=r"^\d{2}-?\d{2}-?\d{6}$",
            phone_required=True,
        ),
        _rules(
            "UA",
            cultures=["uk-UA", "en-US"],
            languages=["uk", "en"],
            postal=r"^\d{5}$",
            calling="380",
            registration=r"^(\d{8}|\d{10})$",
            phone_required=True,
        ),
    )
}

_MISSPELLINGS = {"microsft": "Microsoft", "stret": "Street", "raod": "Road", "avenu": "Avenue"}
_ABBREVIATIONS = {"st": "Street", "rd": "Road", "ave": "Avenue", "blvd": "Boulevard", "dr": "Drive", "ln": "Lane"}
_WORD = re.compile(r"[A-Za-z]+\.?")
_PO_BOX = re.compile(r"\b(p\.?\s?o\.?\s?box|postfach|apartado)\b", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOMAIN = re.compile(r"^[a-z0-9]{1,27}\.onmicrosoft\.com$")
_ADDRESS_FIELDS = ("country", "region", "city", "state", "addressLine1", "addressLine2", "addressLine3", "postalCode")


def rules_for(country: str) -> dict[str, Any] | None:
    return COUNTRY_RULES.get(country.strip().upper())


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _postal_matches(rules: dict[str, Any], postal: str) -> bool:
    return re.match(rules["postalCodeRegex"], postal.upper()) is not None


def _spell_out(line: str) -> str | None:
    """The street line with misspellings and abbreviated street types written out, or None."""
    changed = False

    def replace(match: re.Match[str]) -> str:
        nonlocal changed
        word = match.group(0)
        key = word.rstrip(".").lower()
        if key in _MISSPELLINGS:
            changed = True
            return _MISSPELLINGS[key]
        if key in _ABBREVIATIONS:
            changed = True
            return _ABBREVIATIONS[key]
        return word

    result = _WORD.sub(replace, line)
    return result if changed else None


def _zip_plus_four(line: str, zip_code: str) -> str:
    digest = hashlib.sha256(f"{line.lower()}|{zip_code}".encode()).hexdigest()
    return f"{zip_code}-{int(digest[:8], 16) % 9000 + 1000:04d}"


def _address_out(address: dict[str, Any]) -> dict[str, Any]:
    return {key: address[key] for key in _ADDRESS_FIELDS if _text(address.get(key))}


def validate_address(address: dict[str, Any]) -> dict[str, Any]:
    """Microsoft's AddressValidationResponse for an address, by the rules in the module docstring."""
    original = _address_out(address)
    country = _text(address.get("country")).upper()
    line1 = _text(address.get("addressLine1"))
    city = _text(address.get("city"))
    state = _text(address.get("state")).upper()
    postal = _text(address.get("postalCode")).upper()
    rules = rules_for(country) if country else None

    def answer(status: str, suggestions: list[dict[str, Any]], message: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"originalAddress": original, "suggestedAddresses": suggestions, "status": status}
        if message:
            body["validationMessage"] = message
        return body

    if rules is None:
        return answer("NotValidated", [], f"Address validation is not available for country/region {country!r}.")
    if rules["isPostalCodeRequired"] and not postal:
        return answer("NotValidated", [], "The postal code is required.")
    if not line1:
        return answer("None", [], "The street address is required.")
    if postal and not _postal_matches(rules, postal):
        return answer("None", [], f"The postal code {postal!r} is not valid for {country}.")
    if rules["isCityRequired"] and not city:
        return answer("None", [], "The city is required.")
    if rules["isStateRequired"] and state not in rules["supportedStatesList"]:
        return answer("None", [], f"The state {state!r} is not valid for {country}.")
    if not any(character.isdigit() for character in line1):
        return answer("PremisesPartial", [], "The address has no house or building number.")
    normalised = dict(original, country=country)
    if state:
        normalised["state"] = state
    if postal:
        normalised["postalCode"] = postal
    spelled = _spell_out(line1)
    if spelled is not None:
        return answer("InteractionRequired", [dict(normalised, addressLine1=spelled)], "Please confirm the street.")
    if _PO_BOX.search(line1):
        return answer("Verified", [normalised])
    if country == "US" and re.fullmatch(r"\d{5}", postal):
        normalised["postalCode"] = _zip_plus_four(line1, postal)
    return answer("VerifiedShippable", [normalised])


def _in_list(value: str, allowed: list[str]) -> bool:
    return value.lower() in {item.lower() for item in allowed}


def check_new_customer(company: dict[str, Any], billing: dict[str, Any]) -> str:
    """Partner Center's checks before creating a customer; returns the normalised domain.

    Raises the code Microsoft uses for each failure: 27002 for a bad field, 600049/600050/600002
    for the organisation registration number, 600051 for a missing phone number."""
    domain = _text(company.get("domain")).lower()
    if not _DOMAIN.match(domain):
        raise invalid_property("Domain", "The domain must be <letters and digits>.onmicrosoft.com.")
    if not _text(billing.get("companyName")):
        raise invalid_property("CompanyName", "CompanyName is a required field. Please update the input and try again.")
    if not _EMAIL.match(_text(billing.get("email"))):
        raise invalid_property("Email", "A valid email address is required.")
    address = billing.get("defaultAddress")
    if not isinstance(address, dict):
        raise invalid_property("DefaultAddress", "DefaultAddress is a required field.")
    country = _text(address.get("country")).upper()
    rules = rules_for(country)
    if rules is None:
        raise invalid_property("Country", f"No validation rules were found for the country/region {country}")
    if not _in_list(_text(billing.get("culture")), rules["supportedCulturesList"]):
        raise invalid_property("Culture", f"Culture must be one of {', '.join(rules['supportedCulturesList'])}.")
    if not _in_list(_text(billing.get("language")), rules["supportedLanguagesList"]):
        raise invalid_property("Language", f"Language must be one of {', '.join(rules['supportedLanguagesList'])}.")
    for field in ("firstName", "lastName", "addressLine1"):
        if not _text(address.get(field)):
            name = field[0].upper() + field[1:]
            raise invalid_property(name, f"{name} is a required field. Please update the input and try again.")
    if rules["isCityRequired"] and not _text(address.get("city")):
        raise invalid_property("City", "City is a required field. Please update the input and try again.")
    state = _text(address.get("state")).upper()
    if rules["isStateRequired"] and not state:
        raise invalid_property("State", "State is a required field. Please update the input and try again.")
    if rules["supportedStatesList"] and state and state not in rules["supportedStatesList"]:
        raise invalid_property("StateInvalid", f"{state} is not a state of {country}.")
    postal = _text(address.get("postalCode"))
    if rules["isPostalCodeRequired"] and not postal:
        raise invalid_property("PostalCode", "PostalCode is a required field. Please update the input and try again.")
    if postal and not _postal_matches(rules, postal):
        raise invalid_property("PostalCodeInvalid", f"{postal} does not match {rules['postalCodeRegex']}.")
    extensions = rules["sandboxExtensions"]
    registration = _text(company.get("organizationRegistrationNumber"))
    if extensions["organizationRegistrationNumberRequired"]:
        if not registration:
            raise SandboxError(400, REGISTRATION_NUMBER_MISSING, "Organization registration id information is missing.")
        if not re.match(extensions["organizationRegistrationNumberRegex"], registration):
            raise SandboxError(
                400,
                REGISTRATION_NUMBER_INVALID,
                "Organization registration id information is invalid and should be of the format "
                f"{extensions['organizationRegistrationNumberRegex']}",
            )
    elif registration:
        raise SandboxError(400, REGISTRATION_NUMBER_UNSUPPORTED, "Organization registration id value is not supported.")
    if extensions["phoneNumberRequired"] and not _text(address.get("phoneNumber")):
        raise SandboxError(400, PHONE_NUMBER_MISSING, "Customer phone number is missing.")
    status = validate_address(address)["status"]
    if status in ("None", "NotValidated"):
        raise invalid_property("Address", f"The address could not be validated (status {status}).")
    return domain
