"""Phone numbers checked and written the way libphonenumber (`phonenumbers`) knows them for each
country: `22 12 34 56` typed for Norway becomes `+47 22 12 34 56`. Pure, no I/O."""

from __future__ import annotations

from services.countries import country_name
from services.i18n import _

# `phonenumbers` is imported by the functions that use it: its metadata takes ~10 ms to load, and only a
# tenant form (not a start, nor most turns) checks a phone number.


class InvalidPhone(ValueError):
    """`value` is not a phone number of the country; `str()` says so for the person who typed it."""


def normalise_phone(value: str, country: str) -> str:
    """The number in international format (`+47 22 12 34 56`). A number without a leading + is read
    as one of `country`; one with a + must still be a valid number of its own country."""
    import phonenumbers
    from phonenumbers import NumberParseException, PhoneNumberFormat

    text, region = value.strip(), country.strip().upper()
    try:
        number = phonenumbers.parse(text, region or None)
    except NumberParseException as error:
        raise InvalidPhone(_("{text} is not a phone number{example}.", text=text, example=_example(region))) from error
    if not phonenumbers.is_valid_number(number):
        where = country_name(region) if region else _("its country")
        raise InvalidPhone(
            _(
                "{text} is not a valid phone number for {where}{example}.",
                text=text,
                where=where,
                example=_example(region),
            )
        )
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)


def example_phone(region: str) -> str:
    """A number of the country in international format, to show how one is typed: `+47 21 23 45 67`."""
    import phonenumbers
    from phonenumbers import PhoneNumberFormat

    example = phonenumbers.example_number(region.upper()) if region else None
    return phonenumbers.format_number(example, PhoneNumberFormat.INTERNATIONAL) if example else "+44 20 7946 0000"


def _example(region: str) -> str:
    return _("; type it like {example}", example=example_phone(region))
