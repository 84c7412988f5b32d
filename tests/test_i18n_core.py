"""services/i18n.py: the reader's language from the catalogs, with the fallback chain, plurals by
the language's own rule, and the pseudo-locale."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services import i18n
from services.formatting import reading
from services.i18n import _, ngettext, pgettext, pseudo_locale

NB_PO = r"""msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

msgid "Buy {product}"
msgstr "Kjøp {product}"

#, fuzzy
msgid "Cancel"
msgstr "Avbryt kanskje"

msgid "{n} seat"
msgid_plural "{n} seats"
msgstr[0] "{n} lisens"
msgstr[1] "{n} lisenser"
"""

# Polish has three plural forms: 1, 2-4 (not 12-14), and the rest.
PL_PO = r"""msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=3; plural=(n==1 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);\n"

msgid "{n} seat"
msgid_plural "{n} seats"
msgstr[0] "{n} licencja"
msgstr[1] "{n} licencje"
msgstr[2] "{n} licencji"
"""


@pytest.fixture
def catalogs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for language, text in (("nb", NB_PO), ("pl", PL_PO)):
        folder = tmp_path / language / "LC_MESSAGES"
        folder.mkdir(parents=True)
        (folder / "messages.po").write_text(text, encoding="utf-8")
    monkeypatch.setattr(i18n, "TRANSLATIONS", tmp_path)
    i18n.catalog.cache_clear()
    yield tmp_path
    i18n.catalog.cache_clear()


def test_english_is_the_source_text_with_its_values() -> None:
    assert _("Buy {product}", product="E3") == "Buy E3"
    assert ngettext("{n} seat", "{n} seats", 1) == "1 seat"
    assert ngettext("{n} seat", "{n} seats", 1250) == "1,250 seats"


@pytest.mark.usefixtures("catalogs")
def test_the_region_falls_back_to_its_language_and_then_to_english() -> None:
    with reading("nb_NO"):
        assert _("Buy {product}", product="E3") == "Kjøp E3"
        assert _("Not translated yet") == "Not translated yet"
        assert _("Cancel") == "Cancel"  # a fuzzy guess is not shown
    with reading("en_US"):
        assert _("Buy {product}", product="E3") == "Buy E3"
    assert i18n.shipped_languages() == ["nb", "pl"]


@pytest.mark.usefixtures("catalogs")
def test_plurals_follow_the_language_and_counts_its_grouping() -> None:
    with reading("nb_NO"):
        assert ngettext("{n} seat", "{n} seats", 1) == "1 lisens"
        assert ngettext("{n} seat", "{n} seats", 1250) == "1\xa0250 lisenser"
    with reading("pl"):
        shown = [ngettext("{n} seat", "{n} seats", n) for n in (1, 3, 12, 22, 25)]
    assert shown == ["1 licencja", "3 licencje", "12 licencji", "22 licencje", "25 licencji"]


def test_a_placeholder_nobody_filled_stays_as_written() -> None:
    assert _("Type {name} here") == "Type {name} here"
    assert _("Braces {{kept}}") == "Braces {kept}"


def test_the_pseudo_locale_accents_and_lengthens_but_keeps_placeholders() -> None:
    with pseudo_locale():
        shown = _("Buy {product} {{now}}", product="E3")
        counted = ngettext("{n} seat", "{n} seats", 2)
    assert shown.startswith(i18n.PSEUDO_OPEN) and shown.endswith(i18n.PSEUDO_CLOSE)
    assert "E3" in shown and "{now}" not in shown and "{ƞǿẇ}" in shown
    assert "Buy" not in shown and len(shown) > len("Buy E3 {now}") * 1.3
    assert counted.startswith("[2 ")


def test_the_same_english_in_another_context_can_read_otherwise(catalogs: Path) -> None:
    po = catalogs / "nb" / "LC_MESSAGES" / "messages.po"
    po.write_text(
        po.read_text(encoding="utf-8")
        + '\nmsgid "Stop"\nmsgstr "Avbryt"\n\nmsgctxt "subscription"\nmsgid "Stop"\nmsgstr "Si opp"\n',
        encoding="utf-8",
    )
    i18n.catalog.cache_clear()
    with reading("nb_NO"):
        assert (_("Stop"), pgettext("subscription", "Stop"), pgettext("licence", "Stop")) == (
            "Avbryt",
            "Si opp",
            "Stop",
        )
    assert pgettext("subscription", "Stop") == "Stop"
