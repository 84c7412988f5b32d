"""The shipped message catalogs: the template is what the code says today, and every shipped
language translates every message, completely, with the same placeholders.

`make messages` re-extracts the template and merges it into each language's catalog; a translator
then fills the new entries (docs/i18n.md). These tests say exactly which messages are missing."""

from __future__ import annotations

import ast
import io
from pathlib import Path
from string import Formatter

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from services import i18n
from services.formatting import reading
from services.i18n import _, ngettext
from services.locales import resolve_locale

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = i18n.TRANSLATIONS / f"{i18n.DOMAIN}.pot"
SHOWN = 40  # ids listed in a failure; the count says how many more


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def _key(message: Message) -> str:
    return message.id[0] if isinstance(message.id, tuple | list) else message.id


def _ids(catalog: Catalog) -> set[str]:
    return {_key(message) for message in catalog if message.id}


def _extract_now() -> set[str]:
    """The messages the code holds now, extracted with the project's own mapping (babel.cfg) and
    keywords (`_`, `ngettext`, `N_`), as `make messages` does."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "pgettext": ((1, "c"), 2)}
    found: set[str] = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        found.add(message[0] if isinstance(message, tuple | list) else message)
    return found


def _listed(ids: set[str] | list[str]) -> str:
    shown = sorted(ids)
    more = f"\n  … and {len(shown) - SHOWN} more" if len(shown) > SHOWN else ""
    return "\n".join(f"  {message!r}" for message in shown[:SHOWN]) + more


def _fields(text: str) -> set[str]:
    try:
        return {field for _literal, field, _spec, _conv in Formatter().parse(text) if field is not None}
    except ValueError:
        return {"<unbalanced braces>"}


def test_the_template_is_up_to_date_with_the_code() -> None:
    template = _ids(_read(TEMPLATE))
    now = _extract_now()
    assert now, "nothing was extracted: is babel.cfg's mapping still right?"
    missing, stale = now - template, template - now
    assert not missing and not stale, (
        "services/translations/messages.pot is out of date: run `make messages`, then translate.\n"
        f"In the code but not in the template ({len(missing)}):\n{_listed(missing)}\n"
        f"In the template but no longer in the code ({len(stale)}):\n{_listed(stale)}"
    )


def _calls_inside_f_strings(source: str) -> list[tuple[int, str]]:
    """`f"{ngettext('{n} seat', …)}"`: a translation call inside an f-string, which Babel's extractor
    does not see (the f-string is one token to it), so its message never reaches the catalogs."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.JoinedStr):
            continue
        for inner in ast.walk(node):
            if (
                isinstance(inner, ast.Call)
                and isinstance(inner.func, ast.Name)
                and inner.func.id in {"_", "gettext", "ngettext", "N_", "pgettext"}
                and inner.args
                and isinstance(inner.args[0], ast.Constant)
            ):
                found.append((inner.lineno, str(inner.args[0].value)))
    return found


def test_no_message_hides_inside_an_f_string() -> None:
    hidden = [
        f"{path.relative_to(ROOT)}:{line}: {message!r}"
        for folder in ("bot", "dialogs", "cards", "services", "cli", "startup")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, message in _calls_inside_f_strings(path.read_text(encoding="utf-8"))
    ]
    assert not hidden, "translation calls inside f-strings are never extracted; take them out:\n" + "\n".join(hidden)


def test_the_f_string_check_finds_a_hidden_message() -> None:
    assert _calls_inside_f_strings("x = f\"{ngettext('{n} seat', '{n} seats', 2)}.\"\n") == [(1, "{n} seat")]
    assert _calls_inside_f_strings("x = _('{n} seat') + f'{y}'\n") == []


def test_english_plus_the_languages_the_issue_names_are_shipped() -> None:
    assert {"nb", "sv", "de"} <= set(i18n.shipped_languages())


@pytest.mark.catalogs
@pytest.mark.parametrize("language", i18n.shipped_languages())
def test_every_message_is_translated_with_the_same_placeholders(language: str) -> None:
    template = _read(TEMPLATE)
    catalog = _read(i18n.TRANSLATIONS / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po", locale=language)
    assert catalog.num_plurals >= 1 and catalog.plural_expr, f"{language}: no Plural-Forms header"
    by_id = {_key(message): message for message in catalog if message.id}
    untranslated: list[str] = []
    fuzzy: list[str] = []
    wrong_fields: list[str] = []
    for wanted in template:
        if not wanted.id:
            continue
        key = _key(wanted)
        found = by_id.get(key)
        plural = isinstance(wanted.id, tuple | list)
        forms = list(found.string) if found is not None and isinstance(found.string, tuple | list) else []
        if found is None or (plural and (len(forms) != catalog.num_plurals or not all(forms))):
            untranslated.append(key)
        elif not plural and not found.string:
            untranslated.append(key)
        elif found.fuzzy:
            fuzzy.append(key)
        else:
            expected = set().union(*(_fields(text) for text in wanted.id)) if plural else _fields(key)
            for text in forms if plural else [str(found.string)]:
                # A plural form may leave out `{n}` ("one seat"), never add or rename a placeholder.
                shown = _fields(text)
                if shown - expected or (not plural and shown != expected):
                    wrong_fields.append(f"{key!r} → {text!r}")
    problems = []
    if untranslated:
        problems.append(f"{len(untranslated)} message(s) not translated (all plural forms):\n{_listed(untranslated)}")
    if fuzzy:
        problems.append(f"{len(fuzzy)} fuzzy (unchecked) translation(s):\n{_listed(fuzzy)}")
    if wrong_fields:
        problems.append(f"{len(wrong_fields)} translation(s) with other placeholders:\n" + "\n".join(wrong_fields))
    assert not problems, f"services/translations/{language}: " + "\n".join(problems)


@pytest.mark.parametrize("language", i18n.shipped_languages())
def test_a_catalog_declares_its_own_languages_plural_rule(language: str) -> None:
    """Plural-Forms as Babel's CLDR data has it for the language (what `pybabel init` writes)."""
    catalog = _read(i18n.TRANSLATIONS / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po", locale=language)
    fresh = Catalog(locale=language)
    assert (catalog.num_plurals, catalog.plural_expr) == (fresh.num_plurals, fresh.plural_expr)


@pytest.mark.parametrize("given", ["", "xx-YY", "klingon", "nb_NO@@", "12-34", "../../etc", "zz", "de-", "-", None])
def test_an_unknown_or_malformed_locale_reads_english(given: str | None) -> None:
    locale = resolve_locale(given)
    with reading(locale):
        assert _("Cancel") == "Cancel"
        assert ngettext("{n} seat", "{n} seats", 2) == "2 seats"


def test_the_template_reads_as_a_catalog() -> None:
    """What the code extracted also parses as the template Babel writes (no broken escapes)."""
    buffer = io.BytesIO(TEMPLATE.read_bytes())
    assert len(read_po(buffer)) > 100
