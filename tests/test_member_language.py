"""A member's language: the locale Teams last sent for them is kept (for what is sent outside a
turn), and their own choice — `language nb` in the chat, `cspbot member language` for the operator —
wins over Teams' locale. A language the bot does not speak is refused with the list; nothing changes."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from services import formatting
from services.access import AccessService, ChannelIdentity
from services.audit import entries_for
from services.errors import InvalidInput
from services.i18n import _
from services.locales import member_locale, parse_language
from services.models import Member
from tests.fakes import said as _said
from tests.test_organisations_access import TENANT, _org
from tests.test_subscriptions_bot import _reply, _setup

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("given", "locale"),
    [("nb", "nb"), ("de-DE", "de_DE"), ("sv_SE", "sv_SE"), ("NB-no", "nb_NO"), ("en", "en"), ("auto", None)],
)
def test_a_language_the_bot_speaks_is_taken_with_its_region(given: str, locale: str | None) -> None:
    assert parse_language(given) == locale


@pytest.mark.parametrize("given", ["fr", "klingon", "", "de-", "../nb", "x" * 50, "zz-ZZ"])
def test_any_other_language_is_refused_with_the_list(given: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_language(given)
    for shown in ("English (en)", "norsk bokmål (nb)", "svenska (sv)", "Deutsch (de)", "auto"):
        assert shown in refused.value.message


def test_a_members_own_choice_wins_over_teams_and_english_is_the_last_resort() -> None:
    assert member_locale("de_DE", "nb-NO") == "de_DE"
    assert member_locale(None, "nb-NO") == "nb_NO"
    assert member_locale(None, None) == "en_US"
    assert member_locale(None, "!!") == "en_US"


async def test_the_teams_locale_and_the_choice_are_kept_per_member(services):
    await _org(services)
    await services.organisations.add_member(
        "fabrikam", "pat@fabrikam.com", ["admin"], actor="x", aad_object_id="aad-pat", channel_user_id="29:pat"
    )
    access = AccessService(services.sessions, allow_channel_user_id=False, cache_seconds=60)
    identity = ChannelIdentity(TENANT, "aad-pat", "29:pat")
    caller = await access.resolve(identity)
    assert caller is not None and caller.language is None and caller.teams_locale is None

    await access.remember_teams_locale(caller, "sv-SE")
    caller = await access.resolve(identity)
    assert caller is not None and caller.teams_locale == "sv-SE"  # the remembered caller was dropped

    assert await access.set_language(caller, "de-DE") == "de_DE"
    caller = await access.resolve(identity)
    assert caller is not None and caller.language == "de_DE"

    with pytest.raises(InvalidInput, match="not a language I speak"):
        await access.set_language(caller, "fr")
    assert (await access.resolve(identity)).language == "de_DE"  # nothing changed

    assert await access.set_language(caller, "auto") is None
    assert (await access.resolve(identity)).language is None
    async with services.sessions() as session:
        entries = await entries_for(session, caller.organisation_id)
    changes = [(e.before, e.after) for e in reversed(entries) if e.action == "member.language"]
    assert changes == [({"language": None}, {"language": "de_DE"}), ({"language": "de_DE"}, {"language": None})]


async def test_the_operator_sets_a_members_language(services):
    await _org(services)
    await services.organisations.add_member("fabrikam", "pat@fabrikam.com", ["admin"], actor="x")
    member = await services.organisations.set_language("fabrikam", "Pat@Fabrikam.com", "nb", actor="operator:test")
    assert member.language == "nb"
    with pytest.raises(InvalidInput, match="English \\(en\\)"):
        await services.organisations.set_language("fabrikam", "pat@fabrikam.com", "esperanto", actor="operator:test")
    async with services.sessions() as session:
        assert await session.scalar(select(Member.language).where(Member.email == "pat@fabrikam.com")) == "nb"
    member = await services.organisations.set_language("fabrikam", "pat@fabrikam.com", "AUTO", actor="operator:test")
    assert member.language is None


async def test_the_language_command_shows_sets_and_refuses(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, _sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)

    shown = _said(await _reply(client, fake, url, "language", locale="sv-SE"))
    assert "**svenska (Sverige)**" in shown and "språket i ditt Teams" in shown  # Swedish, in Swedish
    async with services.sessions() as session:
        assert await session.scalar(select(Member.teams_locale).where(Member.aad_object_id.is_not(None))) == "sv-SE"

    refused = _said(await _reply(client, fake, url, "language fr", locale="sv-SE"))
    with formatting.reading("sv_SE"):
        not_spoken = _("{given} is not a language I speak. Choose one of: {languages}, or auto (follow Teams).")
    assert not_spoken.split("{languages}")[0].replace("{given}", "fr") in refused and "Deutsch (de)" in refused
    async with services.sessions() as session:
        assert await session.scalar(select(Member.language).where(Member.aad_object_id.is_not(None))) is None

    chosen = _said(await _reply(client, fake, url, "language de-DE", locale="en-US"))
    with formatting.reading("de_DE"):
        as_chosen = _(
            "I answer you in **{language}**, as you chose. Type **language auto** to follow your Teams language again.",
            language="Deutsch (Deutschland)",
        )
    assert as_chosen in chosen and as_chosen != "I answer you in **Deutsch (Deutschland)**, as you chose."
    # Teams still says en-US, but the member chose German: the amounts read in German.
    listing = _said(await _reply(client, fake, url, "subscriptions", locale="en-US"))
    assert f"6,00{NBSP}$" in listing and "$6.00" not in listing

    await _reply(client, fake, url, "cancel", locale="en-US")  # the subscriptions card waits for an answer
    back = _said(await _reply(client, fake, url, "language auto", locale="en-US"))
    assert re.search(r"English", back) and "the language of your Teams" in back
    listing = _said(await _reply(client, fake, url, "subscriptions", locale="en-US"))
    assert "$6.00" in listing


async def test_a_job_runs_and_is_told_in_its_requesters_language(services):
    """A job (and the outcome the bot tells) reads as its requester does: their own choice of
    language, else the locale Teams last sent for them; someone who is no member reads English."""
    await _org(services)
    await services.organisations.add_member(
        "fabrikam", "pat@fabrikam.com", ["admin"], actor="x", aad_object_id="aad-pat", channel_user_id="29:pat"
    )
    await services.organisations.add_member("fabrikam", "kim@fabrikam.com", ["admin"], actor="x")
    await services.organisations.set_language("fabrikam", "pat@fabrikam.com", "de-DE", actor="operator:test")
    kim = await services.access.member_caller((await services.organisations.get("fabrikam")).id, "kim@fabrikam.com")
    assert kim is not None
    await services.access.remember_teams_locale(kim, "nb-NO")
    organisation_id = kim.organisation_id

    ran: dict[str, str] = {}
    told: dict[str, str] = {}

    async def handler(job):
        ran[job.requested_by] = formatting.money(Decimal("1234.5"), "EUR")
        return {"message": ran[job.requested_by]}

    async def notifier(job):
        told[job.requested_by] = formatting.date(date(2027, 1, 5))

    services.jobs.register("test.reading", handler)
    services.jobs.set_notifier(notifier)
    for who in ("pat@fabrikam.com", "kim@fabrikam.com", "system:test"):
        await services.jobs.submit(
            "test.reading",
            idempotency_key=f"reading:{who}",
            payload={},
            organisation_id=organisation_id,
            requested_by=who,
            notify_conversation_id="chat",
        )
    assert await services.jobs.run_pending() == 3
    assert ran == {
        "pat@fabrikam.com": f"1.234,50{NBSP}€",
        "kim@fabrikam.com": f"1{NBSP}234,50{NBSP}€",
        "system:test": "€1,234.50",
    }
    assert told == {
        "pat@fabrikam.com": "05.01.2027",
        "kim@fabrikam.com": "5.\u00a0jan. 2027",
        "system:test": "Jan 5, 2027",
    }


DE_PO = r"""msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

msgid "Microsoft 365 account for {name}"
msgstr "Microsoft-365-Konto für {name}"
"""


async def test_an_email_to_a_member_reads_in_their_language(services, tmp_path, monkeypatch):
    """E-mails (a new user's password, the tenant's sign-in details) are written in the recipient's
    language when they are a member; to anyone else, in the language of who asked."""
    from services import i18n
    from services.access import reading_for_recipient
    from services.i18n import _

    folder = tmp_path / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text(DE_PO, encoding="utf-8")
    monkeypatch.setattr(i18n, "TRANSLATIONS", tmp_path)
    i18n.catalog.cache_clear()
    try:
        await _org(services)
        await services.organisations.add_member("fabrikam", "pat@fabrikam.com", ["admin"], actor="x")
        await services.organisations.set_language("fabrikam", "pat@fabrikam.com", "de", actor="operator:test")
        organisation_id = (await services.organisations.get("fabrikam")).id
        with formatting.reading("en_US"):  # the admin's turn, in English
            with await reading_for_recipient(services.sessions, organisation_id, "PAT@fabrikam.com"):
                assert _("Microsoft 365 account for {name}", name="Kim") == "Microsoft-365-Konto für Kim"
            with await reading_for_recipient(services.sessions, organisation_id, "stranger@example.com"):
                assert _("Microsoft 365 account for {name}", name="Kim") == "Microsoft 365 account for Kim"
            with await reading_for_recipient(services.sessions, organisation_id + 1, "pat@fabrikam.com"):
                assert _("Microsoft 365 account for {name}", name="Kim") == "Microsoft 365 account for Kim"
    finally:
        i18n.catalog.cache_clear()
