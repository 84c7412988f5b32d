"""Countries as a person chooses them: ISO 3166-1 codes from pycountry (Microsoft's usage locations
and tenant countries are these two-letter codes), their names in the reader's language from Babel's
CLDR territory data, and the names of a country's states from ISO 3166-2. Pure, no I/O."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import pycountry
from babel import Locale, UnknownLocaleError

from services.locales import DEFAULT_LOCALE

COUNTRY_CODES: frozenset[str] = frozenset(country.alpha_2 for country in pycountry.countries)


def normalise_country(value: str) -> str | None:
    """The upper-case ISO 3166-1 alpha-2 code, or None when `value` is not one."""
    code = value.strip().upper()
    return code if code in COUNTRY_CODES else None


@lru_cache(maxsize=64)
def _territories(locale: str) -> dict[str, str]:
    try:
        return dict(Locale.parse(locale).territories)
    except (UnknownLocaleError, ValueError):
        return dict(Locale.parse(DEFAULT_LOCALE).territories)


def country_name(code: str, locale: str | None = None) -> str:
    """`Norway`, `Norwegen`, `Norge` for NO (in the reader's language unless `locale` is given); ISO's
    English name where CLDR has none; the code if unknown."""
    if locale is None:
        from services.formatting import reader

        locale = reader().locale
    shown = _territories(locale).get(code.upper())
    if shown:
        return shown
    country = pycountry.countries.get(alpha_2=code.upper())
    return country.name if country is not None else code


def _sort_key(name: str) -> str:
    # Accents do not move a country to the end of the list (Österreich sorts with the O's).
    return "".join(ch for ch in unicodedata.normalize("NFKD", name.casefold()) if not unicodedata.combining(ch))


@lru_cache(maxsize=64)
def country_choices(locale: str = DEFAULT_LOCALE) -> tuple[tuple[str, str], ...]:
    """Every country as (code, name in `locale`), in the order of their names."""
    named = [(code, country_name(code, locale)) for code in COUNTRY_CODES]
    return tuple(sorted(named, key=lambda pair: (_sort_key(pair[1]), pair[0])))


def state_name(country: str, state: str) -> str:
    """`New South Wales` for AU/NSW from ISO 3166-2; the code itself where ISO has no such code
    (Microsoft's lists keep a few codes ISO has since renamed)."""
    subdivision = pycountry.subdivisions.get(code=f"{country.upper()}-{state.upper()}")
    return subdivision.name if subdivision is not None else state


def state_choices(country: str, states: tuple[str, ...] | list[str]) -> tuple[tuple[str, str], ...]:
    """Microsoft's state codes for a country as (code, `Name (code)`), in the order of their names."""
    named = [(code, f"{state_name(country, code)} ({code})") for code in states]
    return tuple(sorted(named, key=lambda pair: _sort_key(pair[1])))
