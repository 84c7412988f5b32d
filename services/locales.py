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
