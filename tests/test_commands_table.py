"""Typed one-line commands → the card or answer each produces, through the real endpoint, the real
services, the reseller's prices and the Partner Center sandbox (issue 19's table).

Contoso has Business Standard ×10 (Megan holds one), Office 365 E3 ×5, Visio Plan 2 ×3 (monthly),
Teams Essentials ×4, Project Plan 3 ×2 (monthly) and Business Basic twice (6 yearly, 2 monthly);
both E5s are unpriced; Fabrikam's user Lee is not Contoso's. Every row runs in a chat of its own,
and none of them changes anything: the table ends by checking that Microsoft still has what it had.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.models import Approval, Job
from tests.cardcheck import assert_valid_activity_cards
from tests.commands_world import Typist, World, build_world
from tests.conftest import runtime_of
from tests.fakes import card_of, said

ALEX: dict[str, str] = {}
MEGAN = {"user_id": "user-id-1", "name": "Megan Bowen", "aad_object_id": "00000000-0000-0000-0000-0000000000021"}
ADMIN_ONLY = "Only an admin of your organisation can do that."

TABLE: list[tuple[dict[str, str], str, list[str]]] = [
    # --- seats: add / remove / set, with the charge now and the new cost (the task's own preview)
    (
        ALEX,
        "add 5 seats to Business Standard",
        ["10 → 15 seats", "$28.75 (5 × $11.50 × 15/30 days)", "$172.50", "Add 5 seats"],
    ),
    (ALEX, "please add 5 seats to business standard.", ["Microsoft 365 Business Standard: 10 → 15 seats"]),
    (ALEX, "add 5 more E3", ["Office 365 E3: 5 → 10 seats", "$52.90", "Add 5 seats"]),
    (ALEX, "add two seats to Teams Essentials", ["Microsoft Teams Essentials: 4 → 6 seats", "Add 2 seats"]),
    (ALEX, "increase Visio by 1", ["Visio Plan 2: 3 → 4 seats", "Add 1 seat"]),
    (ALEX, "add 5 seats to CFQ7TTC0LDPB:0001", ["Microsoft 365 Business Standard: 10 → 15 seats"]),
    (ALEX, "add 5 seats to m365 business standard", ["Microsoft 365 Business Standard: 10 → 15 seats"]),
    (
        ALEX,
        "remove 2 seats from E3",
        ["Office 365 E3: 5 → 3 seats", "Refunded now (pro rata)", "$21.16", "Remove 2 seats"],
    ),
    (ALEX, "remove 3 E3 seats", ["Office 365 E3: 5 → 2 seats", "Remove 3 seats"]),
    (
        ALEX,
        "set Teams Essentials to 12 seats",
        ["4 → 12 seats", "$14.72 (8 × $3.68 × 15/30 days)", "$44.16", "Add 8 seats"],
    ),
    (ALEX, "set Business Standard to 1", ["10 → 1 seat", "Removable until", "Assigned licences", "Remove 9 seats"]),
    # --- typos and ambiguity
    (
        ALEX,
        "add 5 seats to Busines Standrd",
        ["I took “Busines Standrd” to mean Microsoft 365 Business Standard", "Add 5 seats"],
    ),
    (ALEX, "add 5 seats to Bussiness Standart", ["to mean Microsoft 365 Business Standard", "10 → 15 seats"]),
    (ALEX, "ad 5 seats to E3", ["I read “ad” as **add**", "Office 365 E3: 5 → 10 seats"]),
    (ALEX, "suspnd visio", ["I read “suspnd” as **suspend**", "Suspend Visio Plan 2?", "Ask an approver"]),
    (ALEX, "asign e3 to diego", ["I read “asign” as **assign**", "Give Diego Siciliani a licence for Office 365 E3?"]),
    (
        ALEX,
        "add 2 seats to basic",
        [
            "Which subscription do you mean by “basic”?",
            "6 seats, 1 year billed monthly",
            "2 seats, 1 month billed monthly",
            "None of these",
        ],
    ),
    (ALEX, "when does basic renew", ["Which subscription do you mean by “basic”?"]),
    (
        ALEX,
        "buy 2 E3 yearly",
        [
            "Which product do you mean by “E3”?",
            "Microsoft 365 E3",
            "Office 365 E3",
            "from $21.16 per licence per month",
        ],
    ),
    (
        ALEX,
        "buy 2 Business Premium",
        [
            "Which commitment for Microsoft 365 Business Premium?",
            "1-month commitment, billed monthly",
            "1-year commitment, billed yearly",
        ],
    ),
    # --- quantity missing, zero, negative, too large
    (ALEX, "add seats to E3", ["How many seats?", "add 5 seats to Business Standard"]),
    (ALEX, "remove seats from E3", ["How many seats?", "remove 2 seats from E3"]),
    (ALEX, "set E3 to", ["To how many seats?"]),
    (ALEX, "add 0 seats to E3", ["Adding 0 seats changes nothing"]),
    (ALEX, "remove 0 seats from E3", ["Removing 0 seats changes nothing"]),
    (ALEX, "add -2 seats to E3", ["To remove seats, say **remove 2 seats from E3**"]),
    (ALEX, "remove -1 seats from E3", ["To add seats, say **add 1 seat to E3**"]),
    (ALEX, "set E3 to -3", ["cannot have fewer than 0 seats"]),
    (ALEX, "set E3 to 0", ["Choose between 1 and 100000 seats for Office 365 E3"]),
    (ALEX, "add 100000 seats to E3", ["Choose between 1 and 100000 seats for Office 365 E3"]),
    (ALEX, "remove 9 seats from E3", ["Office 365 E3 has 5 seats, so 9 seats cannot be removed"]),
    (ALEX, "set Teams Essentials to 4 seats", ["already has 4 seats"]),
    (ALEX, "buy 0 Visio Plan 1 monthly", ["The quantity must be between 1 and 100000"]),
    (ALEX, "buy 200000 Visio Plan 1 monthly", ["The quantity must be between 1 and 100000"]),
    # --- buying: the add subscription task's price card
    (
        ALEX,
        "buy 3 Microsoft 365 Business Basic monthly",
        [
            "Check and create the subscription",
            "1-month commitment, billed monthly",
            "3 licences",
            "$19.86 per month",
            "Create subscription",
        ],
    ),
    (
        ALEX,
        "buy Visio Plan 2 annual billed monthly",
        [
            "You did not say how many, so this is for 1",
            "1-year commitment, billed monthly",
            "$165.60 over the 1-year term",
        ],
    ),
    (
        ALEX,
        "buy 2 Teams Essentials 3 years",
        ["is not offered with a 3-year commitment", "1-year commitment, billed yearly"],
    ),
    (
        ALEX,
        "buy Intune Plan 1 monthly",
        ["Microsoft Intune Plan 1 is not offered with a 1-month commitment, billed monthly"],
    ),
    # --- unknown product, product without a price
    (ALEX, "buy 2 E5", ["Your reseller has no price for", "Office 365 E5", "cannot be bought here"]),
    (ALEX, "buy a pizza", ["I do not know a product called “pizza”", "add subscription"]),
    (ALEX, "add 5 seats to E5", ["You have no", "E5 subscription", "buy 1"]),
    (ALEX, "add 5 seats to Widget Pro", ["None of your subscriptions is called “Widget Pro”"]),
    (ALEX, "cancel E5", ["You have no", "E5 subscription"]),
    (ALEX, "assign E5 to diego", ["Your organisation has no", "E5 licences"]),
    # --- suspend, reactivate, auto-renew, cancel
    (
        ALEX,
        "suspend Visio",
        ["Suspend Visio Plan 2?", "An approver of your organisation has to confirm", "Ask an approver"],
    ),
    (ALEX, "reactivate Visio", ["Visio Plan 2 is active, not suspended"]),
    (
        ALEX,
        "turn off auto-renew for E3",
        ["Auto-renew off for Office 365 E3?", "ends on Nov 15, 2027", "Turn auto-renew off"],
    ),
    (ALEX, "turn on auto-renew for E3", ["Auto-renew is already on for Office 365 E3"]),
    (ALEX, "auto-renew off Project Plan 3", ["Auto-renew off for Project Plan 3?", "ends on Dec 15, 2026"]),
    (ALEX, "cancel Project Plan 3", ["Cancel Project Plan 3?", "Refund", "$33.12", "Cancel the subscription"]),
    # --- licences: assign and remove
    (
        ALEX,
        "assign E3 to diego",
        ["Give Diego Siciliani a licence for Office 365 E3?", "5 of 5 (0 assigned)", "Assign the licence"],
    ),
    (ALEX, "give Adele an E3 licence", ["Give Adele Vance a licence for Office 365 E3?"]),
    (ALEX, "assign E3 to Diego Sicilani", ["Give Diego Siciliani a licence for Office 365 E3?"]),
    (ALEX, "assign E3 to lidia", ["Lidia Holloway has no usage location", "Assign the licence"]),
    (
        ALEX,
        "assign Business Standard to megan",
        ["Megan Bowen already has a licence for Microsoft 365 Business Standard"],
    ),
    (ALEX, "assign E3 to li", ["“li” is not a user of your tenant", "Did you mean"]),
    (ALEX, "assign E3", ["To whom?"]),
    (
        ALEX,
        "remove Business Standard from megan",
        [
            "Take the Microsoft 365 Business Standard licence from Megan Bowen?",
            "9 of 10 (1 assigned)",
            "The seat stays bought and billed",
            "Remove the licence",
        ],
    ),
    (ALEX, "remove Business Standard from megan@contosodemo.onmicrosoft.com", ["from Megan Bowen?"]),
    (ALEX, "remove E3 from megan", ["Megan Bowen holds no licence called “E3”", "Microsoft 365 Business Standard"]),
    (ALEX, "remove Business Standard from diego", ["Diego Siciliani holds no licences"]),
    # --- people of another organisation, unknown people
    (
        ALEX,
        "assign E3 to lee@fabrikam.onmicrosoft.com",
        ["“lee@fabrikam.onmicrosoft.com” is not a user of your tenant"],
    ),
    (ALEX, "remove Business Standard from lee@fabrikam.onmicrosoft.com", ["is not a user of your tenant"]),
    (ALEX, "assign E3 to nobody", ["“nobody” is not a user of your tenant", "**users**"]),
    # --- questions
    (
        ALEX,
        "who has Business Standard",
        ["1 person has a licence for Microsoft 365 Business Standard", "Megan Bowen (megan@"],
    ),
    (ALEX, "who has E3", ["Nobody has a licence for Office 365 E3 (5 bought)"]),
    (
        ALEX,
        "how many Business Standard seats are free",
        ["9 of 10 Microsoft 365 Business Standard licences are free (1 assigned)"],
    ),
    (ALEX, "how many free E3 licences are there", ["5 of 5 Office 365 E3 licences are free"]),
    (ALEX, "when does E3 renew", ["Office 365 E3 renews on Nov 15, 2027 with 5 seats", "price is locked"]),
    (ALEX, "when does Project Plan 3 renew", ["Project Plan 3 renews on Dec 15, 2026 with 2 seats"]),
    # --- roles that do not allow it (Megan is an approver)
    (MEGAN, "add 5 seats to E3", [ADMIN_ONLY]),
    (MEGAN, "buy 1 Visio Plan 1 monthly", [ADMIN_ONLY]),
    (MEGAN, "cancel Project Plan 3", [ADMIN_ONLY]),
    (MEGAN, "suspend Visio", ["Only an admin of your organisation can ask for a suspension"]),
    (MEGAN, "who has E3", [ADMIN_ONLY]),
    (MEGAN, "assign E3 to diego", [ADMIN_ONLY]),
    (MEGAN, "when does E3 renew", ["Office 365 E3 renews on Nov 15, 2027"]),
    # --- malformed and unknown
    (ALEX, "buy", ["Add a subscription", "Pick a category."]),  # the full task, as before
    (ALEX, "commands", ["Say what you want in one line", "add 5 seats to Business Standard"]),
    (ALEX, "frobnicate the widgets", ["I did not catch that"]),
    (ALEX, "suspend", ["I did not understand that command", "suspend Visio"]),
]


@pytest.fixture
async def world(sqlite_services, sqlite_demo_customer) -> World:
    return await build_world(sqlite_services, sqlite_demo_customer)


async def test_typed_commands_produce_their_cards_and_change_nothing(make_bot, connector, world, sandbox) -> None:
    assert len(TABLE) >= 60
    fake, url = connector
    client = await make_bot()
    services = runtime_of(client).services
    services.subscriptions.use_clock(sandbox.clock.now)
    customer = world.org.partner_center_customer_id
    assert customer
    before = {
        s.id: (s.quantity, s.status, s.auto_renew_enabled)
        for s in await services.partner_center.subscriptions(customer)
    }
    failures = []
    for row, (who, typed, expected) in enumerate(TABLE):
        person = Typist(client, fake, url, conversation_id=f"personal-chat-{row}", **who)
        replies = await person.say(typed)
        for reply in replies:
            assert_valid_activity_cards(reply)
        shown = "\n".join(said(reply) for reply in replies)
        missing = [part for part in expected if part not in shown]
        if missing or not replies:
            failures.append(f"{typed!r}: missing {missing} in:\n{shown}")
    assert not failures, "\n\n".join(failures)
    after = {
        s.id: (s.quantity, s.status, s.auto_renew_enabled)
        for s in await services.partner_center.subscriptions(customer)
    }
    assert after == before
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Approval)) == 0
        orders = await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "order_subscription"))
        assert orders == 0


@pytest.mark.usefixtures("world")
async def test_in_a_channel_seats_are_confirmed_there_and_people_continue_privately(
    make_bot, connector, sandbox
) -> None:
    fake, url = connector
    client = await make_bot()
    runtime_of(client).services.subscriptions.use_clock(sandbox.clock.now)
    await Typist(client, fake, url).say("hi")  # the 1:1 chat the bot can write to later
    channel = {"conversation_id": "19:general@thread.tacv2", "conversation_type": "channel", "mention_bot": True}
    seats = await Typist(client, fake, url, **channel).say("add 5 seats to Business Standard")  # type: ignore[arg-type]
    assert "10 → 15 seats" in said(seats[-1]) and card_of(seats[-1]) is not None
    private = await Typist(client, fake, url, **channel).say("assign E3 to diego")  # type: ignore[arg-type]
    assert "I have sent that to you in our 1:1 chat" in said(private[-1])
    [pointer] = fake.messages("personal-chat-alex")[-1:]
    assert "about your tenant's users" in said(pointer) and "Run it here" in said(pointer)
    assert "Diego" not in said(private[-1])  # nothing about people in the channel
