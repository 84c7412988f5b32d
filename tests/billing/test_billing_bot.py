"""Billing over HTTP, through the whole app: the dialog and look-ups, private answers, exports by
link and by Teams' file consent flow, and the bills message extension."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.file_uploads import OneDriveUploads
from cards.billing import FILE_CONSENT, FILE_INFO
from dialogs.billing import BILLING_SHORTCUTS, NO_BILLS, billing_tasks
from dialogs.private_replies import SENT_PRIVATELY
from services.billing.cycles import CycleCalendar
from services.billing.export import CSV_COLUMNS
from services.billing.service import BillingService
from services.ledger import LedgerEvent as Ev
from services.seed import DEMO_SLUG
from tests.billing.helpers import ListPrices
from tests.billing.ledger_fixtures import event, price
from tests.cardcheck import assert_valid_attachment, assert_valid_card, assert_valid_compose_result
from tests.conftest import message, runtime_of
from tests.fakes import card_of, card_text, said

THREAD = "team-id;messageid=1700000000002"
LAST = CycleCalendar().last_ended(datetime.now(UTC).date())  # the real clock: the app's own /exports uses it
LAST_MONTH = f"{LAST.end:%Y-%m}"
THIS_MONTH = f"{LAST.end + timedelta(days=1):%Y-%m}"


def _tasks(*, file_consent: bool = False):
    def build(services):
        billing = BillingService(
            services.sessions,
            services.ledger,
            ListPrices(global_entries=[price("30.00")]),
            services.alerts,
            export_base_url="http://127.0.0.1:3978",
            file_consent=file_consent,
        )
        return billing_tasks(billing, OneDriveUploads(services.outbound_hosts.file_upload))

    return build


async def _bot(make_bot, *, file_consent: bool = False):
    client = await make_bot(tasks=_tasks(file_consent=file_consent))
    services = runtime_of(client).services
    org = await services.organisations.get(DEMO_SLUG)
    # 3 seats bought on the first day of the last ended cycle: 3 × 30 × d/d = 90.00
    await services.ledger.record(event(Ev.PURCHASE, LAST.start, 0, 3, organisation_id=org.id))
    return client


async def _say(client, fake, text: str | None, url: str, count: int, **kw: Any) -> dict[str, Any]:
    await client.post("/api/messages", json=message(text, service_url=url, **kw))
    await fake.wait_for(count)
    return fake.messages()[-1]


async def _invoke(client, url: str, invoke_name: str, value: Any, **kw: Any) -> dict[str, Any]:
    activity = message(None, service_url=url, **kw)
    activity.update(type="invoke", name=invoke_name, value=value)
    response = await client.post("/api/messages", json=activity)
    assert response.status == 200
    return await response.json() if response.content_length else {}


def _export_value(fmt: str) -> dict[str, Any]:
    data = {"verb": "billing_export", "format": fmt, "first_month": LAST_MONTH, "last_month": LAST_MONTH}
    return {"action": {"type": "Action.Execute", "verb": "billing_export", "data": data}}


async def test_billing_last_month_answers_with_the_report_card(make_bot, connector) -> None:
    fake, url = connector
    client = await _bot(make_bot)
    reply = await _say(client, fake, "billing last month", url, 1)
    card = card_of(reply)
    assert card is not None
    assert_valid_card(card)
    said = card_text(card)
    assert "€90.00" in said and "Office 365 E3" in said and "Pro-rata purchase" in said
    assert [a["verb"] for a in card["actions"]] == ["billing_export", "billing_export"]


async def test_help_lists_the_billing_shortcuts_and_each_one_works(make_bot, connector) -> None:
    fake, url = connector
    client = await _bot(make_bot)
    listed = said(await _say(client, fake, "help", url, 1))
    assert all(typed in listed for typed, _ in BILLING_SHORTCUTS)
    await _say(client, fake, "billing", url, 2)
    inside = said(await _say(client, fake, "help", url, 3))  # help inside the task
    assert "You are in **Billing**" in inside and "billing last month" in inside
    count = 3
    for typed in ("bill last month", "billing last month", "billing this month", "billing this year"):
        count += 1
        assert "€90.00" in said(await _say(client, fake, typed, url, count)), typed


async def test_the_chooser_keeps_values_and_shows_errors_then_reports(make_bot, connector) -> None:
    fake, url = connector
    client = await _bot(make_bot)
    chooser = card_of(await _say(client, fake, "billing", url, 1))
    assert chooser is not None
    assert_valid_card(chooser)
    bad = {"verb": "billing_range", "choice": "range", "first_month": "2020-01", "last_month": LAST_MONTH}
    again = card_of(await _say(client, fake, None, url, 2, value=bad))
    assert again is not None and "at most 24 months" in card_text(again)
    # The months that have bills, newest first; what was picked stays picked (a month not offered
    # falls back to last month).
    chosen = {i["id"]: i for i in again["body"] if i["type"] == "Input.ChoiceSet"}
    assert [c["value"] for c in chosen["last_month"]["choices"]][:2] == [THIS_MONTH, LAST_MONTH]
    assert (chosen["first_month"]["value"], chosen["last_month"]["value"]) == (LAST_MONTH, LAST_MONTH)
    picked = {"verb": "billing_range", "choice": "range", "first_month": THIS_MONTH, "last_month": LAST_MONTH}
    reversed_range = card_of(await _say(client, fake, None, url, 3, value=picked))
    assert reversed_range is not None and "The first month must not be after the last month." in card_text(
        reversed_range
    )
    chosen = {i["id"]: i for i in reversed_range["body"] if i["type"] == "Input.ChoiceSet"}
    assert (chosen["first_month"]["value"], chosen["last_month"]["value"]) == (THIS_MONTH, LAST_MONTH)
    good = {"verb": "billing_range", "choice": "range", "first_month": LAST_MONTH, "last_month": ""}
    report = card_of(await _say(client, fake, None, url, 4, value=good))
    assert report is not None and "€90.00" in card_text(report)


async def test_without_any_bill_the_chooser_says_so_instead_of_offering_no_months(make_bot, connector) -> None:
    fake, url = connector
    client = await make_bot(tasks=_tasks())  # no subscription yet
    reply = await _say(client, fake, "billing", url, 1)
    assert card_of(reply) is None and said(reply) == NO_BILLS
    menu = await _say(client, fake, "menu", url, 2)  # the task ended: nothing waits for a card
    assert "What can I do" in said(menu) or card_of(menu) is not None


async def test_asked_in_a_channel_the_bill_goes_to_the_personal_chat(make_bot, connector) -> None:
    fake, url = connector
    client = await _bot(make_bot)
    await _say(client, fake, "menu", url, 1)  # the 1:1 chat exists
    await client.post(
        "/api/messages",
        json=message(
            f"billing {LAST_MONTH}",
            service_url=url,
            conversation_id=THREAD,
            conversation_type="channel",
            mention_bot=True,
        ),
    )
    await fake.wait_for(3)
    channel = fake.messages(THREAD)
    assert [m.get("text") for m in channel] == [SENT_PRIVATELY]
    private = [card_of(m) for m in fake.messages("personal-chat-alex")]
    assert any(c is not None and "€90.00" in card_text(c) for c in private)


async def test_an_approver_may_not_read_bills(make_bot, connector) -> None:
    fake, url = connector
    client = await _bot(make_bot)
    megan = {"user_id": "user-id-1", "name": "Megan Bowen", "aad_object_id": "00000000-0000-0000-0000-0000000000021"}
    reply = await _say(client, fake, "billing last month", url, 1, **megan)
    assert "does not allow" in (reply.get("text") or "")
    body = await _invoke(client, url, "composeExtension/query", {"commandId": "searchBills", "parameters": []}, **megan)
    assert body["composeExtension"]["type"] == "message"


async def test_spend_on_a_product(make_bot, connector) -> None:
    fake, url = connector
    client = await _bot(make_bot)
    card = card_of(await _say(client, fake, "what did we spend on E3?", url, 1))
    assert card is not None
    assert_valid_card(card)
    # The product as the catalog spells it, not the words as typed.
    assert "Spend on Office 365 E3\n" in card_text(card) and "November 2026\n€90.00\n" in card_text(card)


async def test_bad_dates_get_a_clear_message(make_bot, connector) -> None:
    fake, url = connector
    client = await _bot(make_bot)
    future = datetime.now(UTC).date() + timedelta(days=70)
    reply = await _say(client, fake, f"billing {future:%Y-%m}", url, 1)
    assert "in the future" in reply["text"]
    reply = await _say(client, fake, "billing 2026-13", url, 2)
    assert "not a month" in reply["text"]


async def test_export_by_link_is_single_use_and_audited(make_bot, connector) -> None:
    fake, url = connector
    client = await _bot(make_bot)
    body = await _invoke(client, url, "adaptiveCard/action", _export_value("csv"))
    assert body["value"] == "Your export link follows."  # in the 1:1 chat itself: not "in our 1:1 chat"
    await fake.wait_for(1)
    link_card = card_of(fake.messages()[-1])
    assert link_card is not None
    assert_valid_card(link_card)
    link = link_card["actions"][0]["url"]
    path = link.removeprefix("http://127.0.0.1:3978")
    download = await client.get(path)
    assert download.status == 200
    assert download.headers["Content-Disposition"] == f'attachment; filename="billing_{LAST_MONTH}.csv"'
    rows = list(csv.reader(io.StringIO((await download.read()).decode("utf-8-sig"))))
    assert tuple(rows[0]) == CSV_COLUMNS and rows[1][3] == "sub-e3"
    assert (await client.get(path)).status == 410  # used
    assert (await client.get(path[:-3] + "xyz")).status == 404  # tampered


async def test_file_consent_accept_uploads_and_decline_offers_a_link(make_bot, connector, aiohttp_server) -> None:
    fake, url = connector
    uploads: list[tuple[bytes, str]] = []

    async def put(request: web.Request) -> web.Response:
        uploads.append((await request.read(), request.headers["Content-Range"]))
        return web.json_response({"id": "file-1"}, status=201)

    onedrive = web.Application()
    onedrive.router.add_put("/upload/{name}", put)
    server = await aiohttp_server(onedrive)
    client = await _bot(make_bot, file_consent=True)

    await _invoke(client, url, "adaptiveCard/action", _export_value("xlsx"))
    await fake.wait_for(1)
    (attachment,) = fake.messages()[-1]["attachments"]
    assert attachment["contentType"] == FILE_CONSENT
    assert_valid_attachment(attachment)
    context = attachment["content"]["acceptContext"]
    assert attachment["content"]["sizeInBytes"] > 0

    upload_info = {
        "name": f"billing_{LAST_MONTH}.xlsx",
        "uploadUrl": f"http://127.0.0.1:{server.port}/upload/x",
        "contentUrl": "https://contoso-my.sharepoint.com/personal/alex/Documents/billing.xlsx",
        "uniqueId": "1150D938-8870-4044-9F2C-5BBDEBA70C9D",
        "fileType": "xlsx",
    }
    accept = {"type": "fileUpload", "action": "accept", "context": context, "uploadInfo": upload_info}
    await _invoke(client, url, "fileConsent/invoke", accept)
    await fake.wait_for(2)
    (info,) = fake.messages()[-1]["attachments"]
    assert info["contentType"] == FILE_INFO and info["content"]["uniqueId"] == upload_info["uniqueId"]
    assert_valid_attachment(info)
    (content, content_range) = uploads[0]
    assert content[:2] == b"PK" and content_range == f"bytes 0-{len(content) - 1}/{len(content)}"

    # The same consent again (a re-delivered invoke) uploads nothing more.
    await _invoke(client, url, "fileConsent/invoke", accept)
    await fake.wait_for(3)
    assert len(uploads) == 1 and "already used" in fake.messages()[-1]["text"]

    decline = {"type": "fileUpload", "action": "decline", "context": context}
    await _invoke(client, url, "fileConsent/invoke", decline)
    await fake.wait_for(4)
    link_card = card_of(fake.messages()[-1])
    assert link_card is not None and "/exports/" in link_card["actions"][0]["url"]
    assert "here is a download link instead" in card_text(link_card)


async def test_the_message_extension_lists_bills_and_inserts_cards(make_bot, connector) -> None:
    fake, url = connector
    client = await _bot(make_bot)
    query = {"commandId": "searchBills", "parameters": [{"name": "query", "value": LAST_MONTH}]}
    body = await _invoke(client, url, "composeExtension/query", query)
    assert_valid_compose_result(body)
    result = body["composeExtension"]
    assert result["type"] == "result"
    (hit,) = result["attachments"]
    assert "€90.00" in hit["preview"]["content"]["title"]
    assert_valid_card(hit["content"])
    initial = await _invoke(
        client,
        url,
        "composeExtension/query",
        {"commandId": "searchBills", "parameters": [{"name": "initialRun", "value": "true"}]},
    )
    # The last 6 months, of which the organisation had service in two (its first purchase was last month).
    assert len(initial["composeExtension"]["attachments"]) == 2
    for attachment in initial["composeExtension"]["attachments"]:
        assert_valid_card(attachment["content"])
    renamed = {"commandId": "searchBills", "parameters": [{"name": "searchQuery", "value": LAST_MONTH}]}
    assert len((await _invoke(client, url, "composeExtension/query", renamed))["composeExtension"]["attachments"]) == 1
    product = await _invoke(
        client,
        url,
        "composeExtension/query",
        {"commandId": "searchBills", "parameters": [{"name": "query", "value": "E3"}]},
    )
    assert "Spend on Office 365 E3: €" in product["composeExtension"]["attachments"][0]["preview"]["content"]["title"]
    assert_valid_compose_result(product)  # the spend card
    bad = await _invoke(
        client,
        url,
        "composeExtension/query",
        {"commandId": "searchBills", "parameters": [{"name": "query", "value": "2026-13"}]},
    )
    assert bad["composeExtension"]["type"] == "message"
    assert_valid_compose_result(bad)


async def test_file_consent_for_someone_elses_export_is_refused(make_bot, connector) -> None:
    fake, url = connector
    client = await _bot(make_bot, file_consent=True)
    services = runtime_of(client).services
    await services.organisations.add_member(
        DEMO_SLUG, "bill@example.com", ["billing"], actor="test", channel_user_id="user-id-7", aad_object_id="aad-bill"
    )
    await _invoke(client, url, "adaptiveCard/action", _export_value("csv"))
    await fake.wait_for(1)
    context = fake.messages()[-1]["attachments"][0]["content"]["acceptContext"]
    upload = "https://contoso-my.sharepoint.com/upload"  # an allowed host: the export is refused, not the URL
    upload_info = {"name": "x.csv", "uploadUrl": upload, "contentUrl": "", "uniqueId": "u"}
    accept = {"type": "fileUpload", "action": "accept", "context": context, "uploadInfo": upload_info}
    await _invoke(client, url, "fileConsent/invoke", accept, user_id="user-id-7", name="Bill", aad_object_id="aad-bill")
    await fake.wait_for(2)
    assert "someone else" in fake.messages()[-1]["text"]
    # A bad upload address is refused before the export is used up …
    await _invoke(client, url, "fileConsent/invoke", {**accept, "uploadInfo": {**upload_info, "uploadUrl": "ftp://x"}})
    await fake.wait_for(3)
    assert "upload address" in fake.messages()[-1]["text"]
    # … and the other member's attempt did not use it up either: Alex's own consent still redeems it.
    grant = await services.billing.redeem_export_link(context["export"])
    assert grant.file_format == "csv"


async def test_an_export_asked_for_in_a_channel_says_where_the_link_went(make_bot, connector) -> None:
    fake, url = connector
    client = await _bot(make_bot)
    await _say(client, fake, "menu", url, 1)  # the 1:1 chat exists
    body = await _invoke(
        client, url, "adaptiveCard/action", _export_value("csv"), conversation_id=THREAD, conversation_type="channel"
    )
    assert body["value"] == "Your export link is in our 1:1 chat."
    await fake.wait_for(3)
    links = [card_of(m) for m in fake.messages("personal-chat-alex")]
    assert any(c is not None and "Download" in card_text(c) for c in links)
