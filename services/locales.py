"""Which CLDR locale a person reads in: Teams sends each activity's `locale` as a BCP 47 tag
(`nb-NO`, `de-DE`, `sv-SE`). Pure, no framework types: the bot hands in the tag as a string."""

from __future__ import annotations

import re

from babel import Locale, UnknownLocaleError

DEFAULT_LOCALE = "en_US"
_TAG = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


def resolve_locale(tag: str | None) -> str:
    """The CLDR locale to format for: the tag itself when Babel knows it (`nb-NO` → `nb_NO`), else
    its language (`nb-XX` → `nb`), else English (`DEFAULT_LOCALE`) — also for a missing, malformed
    or unknown tag."""
    text = (tag or "").strip()
    if not _TAG.match(text):
        return DEFAULT_LOCALE
    parts = re.split(r"[-_]", text)
    candidates = [text.replace("-", "_"), parts[0]] if len(parts) > 1 else [parts[0]]
    for candidate in candidates:
        try:
            return str(Locale.parse(candidate))
        except (UnknownLocaleError, ValueError):
            continue
    return DEFAULT_LOCALE


AUTO = "auto"


def language_choices() -> list[tuple[str, str]]:
    """(tag, name in its own language) of every language the bot speaks: English, the source, and
    each language with a catalog (`nb` → `norsk bokmål`)."""
    from services.i18n import shipped_languages

    tags = ["en", *(tag for tag in shipped_languages() if tag != "en")]
    return [(tag, Locale.parse(tag).get_display_name(tag) or tag) for tag in tags]


def parse_language(text: str) -> str | None:
    """A member's choice of language: `auto` (None: follow Teams' locale), or a language the bot
    speaks, by its tag with or without a region (`nb`, `de-DE`, `sv_SE`) → the CLDR locale to read
    in (`nb`, `de_DE`: the region keeps its formats). Anything else is refused with the list."""
    from services.errors import InvalidInput
    from services.i18n import _

    given = (text or "").strip()
    if given.lower() == AUTO:
        return None
    shipped = [tag for tag, _name in language_choices()]
    locale = resolve_locale(given)
    unknown = locale == DEFAULT_LOCALE and not given.lower().startswith("en")  # resolve_locale's fallback
    if unknown or locale.split("_")[0] not in shipped:
        listed = ", ".join(f"{name} ({tag})" for tag, name in language_choices())
        raise InvalidInput(
            _(
                "{given} is not a language I speak. Choose one of: {languages}, or auto (follow Teams).",
                given=given or "\u2014",
                languages=listed,
            ),
            field="language",
        )
    return locale


def member_locale(language: str | None, teams_locale: str | None) -> str:
    """The locale a member reads in: their own choice, else the last locale Teams sent for them,
    else English."""
    return resolve_locale(language or teams_locale)
