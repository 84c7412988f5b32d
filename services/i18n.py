"""The words a person reads, in their language: gettext message catalogs (`services/translations/
<language>/LC_MESSAGES/messages.po`, extracted and updated with Babel — see docs/i18n.md), chosen
for the reader the bot set for the turn with `formatting.reading(...)` (a context variable, so card
builders and services translate for the person who asked without passing a language down).

- `_("Buy {product}", product=name)`: a message, translated, its `{placeholders}` filled after.
- `ngettext("{n} seat", "{n} seats", n)`: a count with the language's plural rules (`n` is filled
  in, grouped for the reader's locale).
- Messages are format strings: `{name}` is a value, `{{` a literal brace. A placeholder nobody
  filled stays as written.
- `pgettext("subscription", "Cancel")`: the same English words with another meaning (ending a
  subscription, not a task), so a language can say them differently (`Kündigen`, not `Abbrechen`).
- `N_("Monthly")`: marks a constant for extraction at import time; translate it with `_()` where
  it is shown.

The fallback chain is the reader's locale (`nb_NO`), then its language (`nb`), then the English
source text. A message missing from a catalog reads in English, never as an empty string.

The pseudo-locale `qps-ploc` (Microsoft's name for it) reads every message accented and a third
longer, with its placeholders intact: a test renders every card builder in it to find text that
does not go through `_()` and cards that break when a language is longer than English.
"""

from __future__ import annotations

import gettext as _gettext_module
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Formatter
from typing import Any

TRANSLATIONS = Path(__file__).with_name("translations")
DOMAIN = "messages"
PSEUDO_LOCALE = "qps_ploc"

_pseudo: ContextVar[bool] = ContextVar("csp_pseudo_locale", default=False)


@dataclass(frozen=True)
class Catalog:
    """One language's translations: singular messages by id, plural messages by singular id, and
    the language's plural rule (the catalog's `Plural-Forms` expression → form index)."""

    language: str
    messages: dict[str, str]
    plurals: dict[str, tuple[str, ...]]
    plural_index: Callable[[int], int]


def shipped_languages() -> list[str]:
    """The languages with a catalog (besides English, the source language), sorted."""
    if not TRANSLATIONS.is_dir():
        return []
    return sorted(p.name for p in TRANSLATIONS.iterdir() if (p / "LC_MESSAGES" / f"{DOMAIN}.po").is_file())


@cache
def catalog(language: str) -> Catalog | None:
    """The catalog for one language (`nb`, `nb_NO`), read once from its `.po` file; None when the
    language has none. Fuzzy entries (a translator's unfinished guess) are left out."""
    path = TRANSLATIONS / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.is_file():
        return None
    from babel.messages.pofile import read_po  # only when a language other than English is read

    with path.open("rb") as handle:
        po = read_po(handle, locale=language)
    messages: dict[str, str] = {}
    plurals: dict[str, tuple[str, ...]] = {}
    for message in po:
        if not message.id or message.fuzzy:
            continue
        if isinstance(message.id, tuple | list):
            forms = tuple(message.string or ())
            if forms and all(forms):
                plurals[message.id[0]] = forms
        elif isinstance(message.string, str) and message.string:
            messages[_keyed(message.context, message.id)] = message.string
    expression = po.plural_expr or "(n != 1)"
    return Catalog(language, messages, plurals, _gettext_module.c2py(expression))


def _catalogs_for(locale: str) -> Iterator[Catalog]:
    """`nb_NO` → the `nb_NO` catalog if there is one, then `nb`'s."""
    language = locale.partition("_")[0]
    for candidate in (locale, language) if language != locale else (locale,):
        found = catalog(candidate)
        if found is not None:
            yield found


_reader_of_turn: Callable[[], Any] | None = None


def _reader_locale() -> str:
    global _reader_of_turn
    if _reader_of_turn is None:  # formatting imports this module: looked up once, on first use
        from services.formatting import reader

        _reader_of_turn = reader
    locale: str = _reader_of_turn().locale
    return locale


def _keyed(context: str | None, message: str) -> str:
    """gettext's key of a message said in a context: `context` EOT `message`."""
    return f"{context}\x04{message}" if context else message


def _translated(context: str | None, message: str) -> str:
    if _pseudo.get():
        return pseudo(message)
    key = _keyed(context, message)
    locale = _reader_locale()
    language = locale.partition("_")[0]
    for candidate in (locale, language):  # inline: a card asks this hundreds of times
        found = catalog(candidate)
        if found is not None and key in found.messages:
            return found.messages[key]
    return message


def _(message: str, /, **values: Any) -> str:
    """`message` in the reader's language, with `values` filled into its `{placeholders}`."""
    return _fill(_translated(None, message), values)


def pgettext(context: str, message: str, /, **values: Any) -> str:
    """`message` as said in `context` (a word for translators: `subscription`), so the same English
    can be two things in another language; as `_()` otherwise."""
    return _fill(_translated(context, message), values)


gettext = _


class _Values(dict[str, Any]):
    """A placeholder a translation names but the caller did not give stays as written instead of
    failing the turn (the completeness test keeps catalogs from doing that)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(text: str, values: dict[str, Any]) -> str:
    """Messages are format strings: `{name}` is a value, `{{` a literal brace."""
    try:
        return text.format_map(_Values(values))
    except (ValueError, IndexError, AttributeError):
        return text


def ngettext(singular: str, plural: str, n: int, /, **values: Any) -> str:
    """The form of a counted message that agrees with `n` in the reader's language; `{n}` is the
    count grouped for the reader's locale (`1 250`), other `values` are filled in as by `_()`."""
    from services.formatting import count

    text = singular if n == 1 else plural
    if _pseudo.get():
        text = pseudo(text)
    else:
        for found in _catalogs_for(_reader_locale()):
            forms = found.plurals.get(singular)
            if forms:
                index = found.plural_index(n)
                text = forms[index] if 0 <= index < len(forms) else forms[-1]
                break
    return _fill(text, {"n": count(n), **values})


def N_(message: str, /) -> str:  # noqa: N802 (gettext's name for it)
    """Marks `message` for extraction without translating it (module constants): pass it through
    `_()` where it is shown."""
    return message


@contextmanager
def pseudo_locale() -> Iterator[None]:
    """Every message reads in the pseudo-locale until the block ends (tests)."""
    token = _pseudo.set(True)
    try:
        yield
    finally:
        _pseudo.reset(token)


_ACCENTED = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "ȧƀƈḓḗƒɠħīĵķŀḿƞǿƥɋřşŧŭṽẇẋẏẑȦƁƇḒḖƑƓĦĪĴĶĿḾȠǾƤɊŘŞŦŬṼẆẊẎẐ",
)
PSEUDO_OPEN, PSEUDO_CLOSE = "[", "]"


def pseudo(message: str) -> str:
    """`Buy {product}` → `[Ɓŭẏ {product} ·····]`: accented, a third longer, the placeholders (and
    their format specs) kept as they are so `.format` still fills them."""
    parts: list[str] = []
    for literal, field, spec, conversion in Formatter().parse(message):
        parts.append(literal.translate(_ACCENTED).replace("{", "{{").replace("}", "}}"))
        if field is not None:
            parts.append("{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
    padding = "·" * max(1, len(message) // 3)
    return f"{PSEUDO_OPEN}{''.join(parts)} {padding}{PSEUDO_CLOSE}"
