"""The warnings service on the sandbox's clock: which warning is due when (each of Microsoft's rules
behind it), at most once per (subscription, kind, window), to the organisation's admins as they are
now, one warning after a clock jump, a late warning only while its action is possible, quiet hours,
idle licences and users, the pass as a durable job (one replica runs it) and the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from services.container import Services
from services.errors import InvalidInput
from services.models import Job, WarningNotice
from services.organisations import OrganisationView
from services.partner_center.models import SubscriptionStatus
from services.seed import DEMO_SLUG, PLAYGROUND_ADMIN, PLAYGROUND_APPROVER
from services.warnings.rules import Kind
from services.warnings.service import NoticeView, Recipient, WarningService
from tests.conftest import SANDBOX_START, Sandbox, demo_customer_then
from tests.subscription_fixtures import BASIC_LICENCE, admin, buy, prepare_catalog_and_prices

ANNUAL_RENEWAL = datetime(2027, 11, 16, tzinfo=UTC)  # a P1Y term bought on 2026-11-16 renews then


@dataclass
class Posted:
    """The bot's side of delivery, recorded: which notice reached which admin's chat."""

    sent: list[tuple[NoticeView, Recipient]] = field(default_factory=list)
    refuse: bool = False
    untaken: bool = False  # the connector answered without a message id: nothing was posted

    async def __call__(self, notice: NoticeView, recipient: Recipient) -> str | None:
        if self.refuse:
            raise ConnectionError("the connector is down")
        if self.untaken:
            return None
        self.sent.append((notice, recipient))
        return f"activity-{len(self.sent)}"

    def kinds(self) -> list[tuple[Kind, str]]:
        return [(notice.kind, recipient.name) for notice, recipient in self.sent]


@dataclass
class World:
    services: Services
    sandbox: Sandbox
    org: OrganisationView
    posted: Posted

    @property
    def warnings(self) -> WarningService:
        return self.services.warnings

    async def at(self, instant: datetime) -> None:
        await self.sandbox.admin("POST", "/clock", {"set": instant.isoformat()})

    async def later(self, **delta: float) -> None:
        await self.at(self.sandbox.clock.now() + timedelta(**delta))

    async def run(self) -> list[tuple[Kind, str]]:
        before = len(self.posted.sent)
        await self.warnings.run_pass()
        return self.posted.kinds()[before:]


@pytest.fixture
@demo_customer_then(prepare_catalog_and_prices)
async def world(
    sqlite_services: Services, sandbox: Sandbox, sqlite_demo_customer: OrganisationView
) -> AsyncIterator[World]:
    org = sqlite_demo_customer
    sqlite_services.subscriptions.use_clock(sandbox.clock.now)
    sqlite_services.warnings.clock = sandbox.clock.now
    members = {m.email: m.id for m in (await sqlite_services.organisations.get(DEMO_SLUG)).members}
    for who in (PLAYGROUND_ADMIN, PLAYGROUND_APPROVER):  # both have a 1:1 chat with the bot
        await sqlite_services.conversations.save(
            f"chat-{who[2]}", {"who": who[2]}, conversation_type="personal", organisation_id=org.id,
            member_id=members[who[0]],
        )  # fmt: skip
    posted = Posted()
    sqlite_services.warnings.set_delivery(posted)
    yield World(sqlite_services, sandbox, org, posted)


async def _notices(services: Services) -> list[WarningNotice]:
    async with services.sessions() as session:
        return list(await session.scalars(select(WarningNotice).order_by(WarningNotice.id)))


async def _assign(world: World, user_id: str, licence: str = BASIC_LICENCE) -> None:
    customer = world.org.partner_center_customer_id
    await world.sandbox.admin("POST", f"/customers/{customer}/users/{user_id}/licenses", {"assign": [licence]})


async def _new_user(world: World, name: str) -> str:
    customer = world.org.partner_center_customer_id
    user = await world.sandbox.admin(
        "POST",
        f"/customers/{customer}/users",
        {"userPrincipalName": f"{name}@contosodemo.onmicrosoft.com", "displayName": name, "usageLocation": "US"},
    )
    return str(user["id"])


# --- seat window (refundable only within 168 hours of being added) ---------------------------------


async def test_seat_window_warns_once_before_it_closes_to_admins_only(world):
    sid = await buy(world.services, world.org, quantity=10)
    await world.later(days=5, minutes=-1)  # a minute before the 48 hours before the window closes
    assert await world.run() == []
    await world.later(minutes=1)
    assert await world.run() == [(Kind.SEAT_WINDOW, "Alex Wilber")]  # the approver is no admin
    notice, _ = world.posted.sent[0]
    assert notice.subject == sid and notice.deadline == SANDBOX_START + timedelta(hours=168)
    assert notice.facts["removable"] == 9 and notice.facts["unassigned"] == 10  # the last seat is a cancellation
    assert notice.facts["unit_price"] == "6.00" and notice.facts["currency"] == "USD"
    await world.later(hours=3)
    assert await world.run() == []  # the same window is never told twice
    assert [n.status for n in await _notices(world.services)] == ["sent"]


async def test_a_post_teams_did_not_take_is_sent_again_on_the_next_pass(world):
    await buy(world.services, world.org, quantity=10)
    await world.later(days=5)
    world.posted.untaken = True
    assert await world.run() == []
    assert [n.status for n in await _notices(world.services)] == ["pending"]  # not counted as delivered
    world.posted.untaken = False
    await world.later(minutes=1)
    assert await world.run() == [(Kind.SEAT_WINDOW, "Alex Wilber")]
    assert [n.status for n in await _notices(world.services)] == ["sent"]


async def test_no_seat_window_warning_when_every_refundable_seat_is_in_use(world):
    await buy(world.services, world.org, quantity=1)
    await _assign(world, await _new_user(world, "kim"))
    await world.later(days=6)
    assert await world.run() == []


async def test_seats_added_mid_term_have_their_own_window(world):
    sid = await buy(world.services, world.org, quantity=10)
    await world.later(days=3)
    customer = world.org.partner_center_customer_id
    current = await world.services.partner_center.subscription(customer, sid)
    await world.services.partner_center.update_subscription(customer, current.model_copy(update={"quantity": 15}))
    await world.later(days=2, hours=1)  # the purchase's seats close in 47 h
    assert await world.run() == [(Kind.SEAT_WINDOW, "Alex Wilber")]
    assert world.posted.sent[-1][0].facts["refundable"] == 15
    await world.later(days=3)  # the purchase's window closed; the 5 added seats close in 47 h
    assert await world.run() == [(Kind.SEAT_WINDOW, "Alex Wilber")]
    notice = world.posted.sent[-1][0]
    assert notice.facts["refundable"] == 5 and notice.facts["removable"] == 5
    assert notice.deadline == SANDBOX_START + timedelta(days=3, hours=168)


async def test_a_seat_window_that_closed_while_the_bot_was_down_is_not_sent(world):
    await buy(world.services, world.org, quantity=10)
    await world.later(days=7, minutes=1)
    assert await world.run() == []


# --- renewal (schedule before the 24-hour lock; renewals at each term's end) -----------------------


async def test_renewal_lead_times_each_once_and_a_jump_sends_only_the_latest(world):
    await buy(world.services, world.org, quantity=10, term="P1Y", cycle="monthly")
    await world.at(ANNUAL_RENEWAL - timedelta(days=30, minutes=1))
    assert await world.run() == []
    await world.at(ANNUAL_RENEWAL - timedelta(days=30))
    assert await world.run() == [(Kind.RENEWAL, "Alex Wilber")]
    notice = world.posted.sent[-1][0]
    assert notice.facts["lead_days"] == 30 and notice.facts["renewing_quantity"] == 10
    assert notice.facts["cost_per_period"] == "60.00" and notice.facts["cost_per_term"] == "720.00"
    assert notice.deadline == ANNUAL_RENEWAL - timedelta(hours=24)
    await world.later(days=10)
    assert await world.run() == []
    await world.at(ANNUAL_RENEWAL - timedelta(days=7))
    assert await world.run() == [(Kind.RENEWAL, "Alex Wilber")]
    assert world.posted.sent[-1][0].facts["lead_days"] == 7


async def test_a_clock_jump_over_several_lead_times_sends_one_warning(world):
    await buy(world.services, world.org, quantity=10, term="P1Y", cycle="annual")
    await world.at(ANNUAL_RENEWAL - timedelta(days=5))
    assert await world.run() == [(Kind.RENEWAL, "Alex Wilber")]
    assert world.posted.sent[-1][0].facts["lead_days"] == 7
    assert await world.run() == []
    assert [n.window for n in await _notices(world.services)] == ["2027-11-16:7d"]


async def test_a_renewal_warning_comes_no_later_than_48_hours_before_the_lock(world):
    await world.services.warnings.settings.change(world.org.id, actor="tests", leads="1")
    await buy(world.services, world.org, quantity=10, term="P1Y", cycle="annual")
    await world.at(ANNUAL_RENEWAL - timedelta(hours=72, seconds=1))
    assert await world.run() == []
    await world.at(ANNUAL_RENEWAL - timedelta(hours=72))
    assert await world.run() == [(Kind.RENEWAL, "Alex Wilber")]


async def test_no_renewal_warning_inside_the_lock_or_when_it_does_not_renew(world):
    sid = await buy(world.services, world.org, quantity=10, term="P1Y", cycle="annual")
    other = await buy(world.services, world.org, quantity=4, term="P1Y", cycle="annual")
    customer = world.org.partner_center_customer_id
    current = await world.services.partner_center.subscription(customer, other)
    await world.services.partner_center.update_subscription(
        customer, current.model_copy(update={"auto_renew_enabled": False})
    )
    await world.at(ANNUAL_RENEWAL - timedelta(hours=23))  # the bot was down until inside the lock
    assert await world.run() == []
    assert not [n for n in await _notices(world.services) if n.subject in (sid, other)]


async def test_a_monthly_term_gets_its_7_day_warning_not_a_30_day_one(world):
    await buy(world.services, world.org, quantity=3, term="P1M", cycle="monthly")
    renewal = datetime(2026, 12, 16, tzinfo=UTC)
    await world.at(renewal - timedelta(days=8))
    assert await world.run() == []
    await world.at(renewal - timedelta(days=7))
    assert await world.run() == [(Kind.RENEWAL, "Alex Wilber")]
    await world.at(renewal + timedelta(days=1))  # renewed; the next term's 7 days are far off
    assert await world.run() == []


async def test_suspended_subscriptions_are_not_warned_about(world):
    sid = await buy(world.services, world.org, quantity=10)
    customer = world.org.partner_center_customer_id
    current = await world.services.partner_center.subscription(customer, sid)
    suspended = current.model_copy(update={"status": SubscriptionStatus.SUSPENDED})
    await world.services.partner_center.update_subscription(customer, suspended)
    await world.later(days=6)
    assert await world.run() == []


# --- idle licences ---------------------------------------------------------------------------------


async def test_seats_unassigned_for_the_idle_threshold_are_warned_about_monthly(world):
    await buy(world.services, world.org, quantity=5, term="P1Y", cycle="monthly")
    await world.later(days=8)
    assert await world.run() == []  # the bot notes them idle from now
    await world.later(days=29)
    assert await world.run() == []
    await world.later(days=1)
    assert await world.run() == [(Kind.IDLE, "Alex Wilber")]
    notice = world.posted.sent[-1][0]
    assert notice.subject == BASIC_LICENCE and notice.facts["idle_seats"] == 5
    assert notice.facts["monthly_price"] == "6.00" and notice.facts["monthly_cost"] == "30.00"
    assert notice.facts["reassign_now"] == 5 and notice.facts["reducible_at_renewal"] == 5
    await world.later(days=2)
    assert await world.run() == []  # once a month


async def test_a_seat_assigned_meanwhile_is_not_idle(world):
    await buy(world.services, world.org, quantity=5)
    await world.later(days=8)
    await world.run()
    await _assign(world, await _new_user(world, "kim"))
    await world.later(days=31)
    await world.run()
    assert world.posted.sent[-1][0].facts["idle_seats"] == 4


async def test_licensed_users_who_have_not_signed_in_are_listed(world):
    await buy(world.services, world.org, quantity=2)
    kim, lee = await _new_user(world, "kim"), await _new_user(world, "lee")
    for user in (kim, lee):
        await _assign(world, user)
    await world.later(days=31)
    customer = world.org.partner_center_customer_id
    await world.sandbox.admin("POST", f"/customers/{customer}/users/{lee}/signins", {})
    await world.services.user_sync.sync(world.org.id)
    assert await world.run() == [(Kind.IDLE, "Alex Wilber")]
    facts = world.posted.sent[-1][0].facts
    assert [u["name"] for u in facts["inactive_users"]] == ["kim"] and facts["idle_seats"] == 0


async def test_excluded_offers_and_disabled_kinds_are_not_warned_about(world):
    await world.services.warnings.settings.change(
        world.org.id, actor="tests", excluded="CFQ7TTC0LH18:0001", disable=["seat_window"]
    )
    await buy(world.services, world.org, quantity=5)
    await world.later(days=6)
    await world.run()
    await world.later(days=31)
    assert await world.run() == []


# --- who receives them -----------------------------------------------------------------------------


async def test_never_to_a_removed_admin_and_the_operator_hears_when_nobody_is_reachable(world):
    await world.services.organisations.set_roles(DEMO_SLUG, PLAYGROUND_ADMIN[0], remove=["admin"], actor="op")
    await buy(world.services, world.org, quantity=10)
    await world.later(days=6)
    assert await world.run() == []
    alerts = [a for a in await world.services.alerts.list() if a.code == "warnings_undeliverable"]
    assert len(alerts) == 1 and alerts[0].organisation_id == world.org.id
    (notice,) = await _notices(world.services)
    assert notice.status == "pending"
    # An admin who can be reached later gets it on the next pass, while its action is possible.
    await world.services.organisations.set_roles(DEMO_SLUG, PLAYGROUND_APPROVER[0], add=["admin"], actor="op")
    await world.later(hours=1)
    assert await world.run() == [(Kind.SEAT_WINDOW, "Megan Bowen")]


async def test_a_warning_nobody_got_before_its_moment_passed_expires(world):
    world.posted.refuse = True
    await buy(world.services, world.org, quantity=10)
    await world.later(days=6)
    await world.run()
    world.posted.refuse = False
    await world.later(days=2)
    assert await world.run() == []
    assert [(n.status, n.sent_to) for n in await _notices(world.services)] == [("expired", [])]


async def test_quiet_hours_hold_back_what_can_wait_but_not_what_would_be_too_late(world):
    await world.services.warnings.settings.change(world.org.id, actor="tests", quiet="20-08", timezone="UTC")
    await buy(world.services, world.org, quantity=10)  # 09:00; its window closes in 7 days at 09:00
    await world.at(SANDBOX_START + timedelta(days=5, hours=12))  # 21:00, in quiet hours; closes in 36 h
    assert await world.run() == []
    await world.at(SANDBOX_START + timedelta(days=6, hours=-1))  # 08:00: quiet hours over
    assert await world.run() == [(Kind.SEAT_WINDOW, "Alex Wilber")]


async def test_a_deadline_inside_quiet_hours_is_sent_at_once(world):
    await world.services.warnings.settings.change(world.org.id, actor="tests", quiet="22-12", timezone="UTC")
    await buy(world.services, world.org, quantity=10)
    await world.at(SANDBOX_START + timedelta(days=6, hours=14))  # 23:00; the window closes at 09:00
    assert await world.run() == [(Kind.SEAT_WINDOW, "Alex Wilber")]


# --- the pass as a durable job ---------------------------------------------------------------------


async def test_the_pass_is_one_durable_job_per_slot_however_many_replicas_submit(world):
    await buy(world.services, world.org, quantity=10)
    await world.later(days=6)
    other = WarningService.__new__(WarningService)  # a second replica's scheduler on the same database
    other.__dict__.update(world.warnings.__dict__)
    assert await world.warnings.submit_pass() is True
    assert await other.submit_pass() is False
    assert await world.services.jobs.run_pending() == 1
    assert world.posted.kinds() == [(Kind.SEAT_WINDOW, "Alex Wilber")]
    await world.later(hours=1)  # the next slot of Microsoft's time: a new pass, nothing new to say
    assert await world.warnings.submit_pass() is True
    assert await world.services.jobs.run_pending() == 1
    assert len(world.posted.sent) == 1
    async with world.services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "warnings.pass")) == 2


async def test_a_notice_is_claimed_once_on_both_databases(services, demo_customer, sandbox):
    """The claim is the unique key (organisation, kind, subject, window) — on PostgreSQL as on SQLite."""
    await prepare_catalog_and_prices(services)
    services.subscriptions.use_clock(sandbox.clock.now)
    services.warnings.clock = sandbox.clock.now
    posted = Posted()
    services.warnings.set_delivery(posted)
    caller = await admin(services)
    await services.conversations.save(
        "chat-alex", {}, conversation_type="personal", organisation_id=caller.organisation_id,
        member_id=caller.member_id,
    )  # fmt: skip
    await buy(services, demo_customer, quantity=10)
    await sandbox.admin("POST", "/clock", {"advance": "P6D"})
    first, second = await services.warnings.run_pass(), await services.warnings.run_pass()
    assert (first.sent, second.sent, second.due) == (1, 0, 1)
    assert len(posted.sent) == 1


# --- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"leads": "30,x"}, "whole days from 1 to 365"),
        ({"leads": "0"}, "whole days from 1 to 365"),
        ({"seat_window_hours": "200"}, "from 1 to 167"),
        ({"idle_days": "3"}, "from 7 to 365"),
        ({"excluded": "E3"}, "PRODUCT:SKU"),
        ({"quiet": "25-08"}, "two different hours"),
        ({"timezone": "Mars/Olympus"}, "Unknown time zone"),
        ({"disable": ["sleep"]}, "Unknown warning"),
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(world, change: dict[str, Any], message: str):
    before = await world.warnings.settings.get(world.org.id)
    with pytest.raises(InvalidInput, match=message):
        await world.warnings.settings.change(world.org.id, actor="tests", **change)
    assert await world.warnings.settings.get(world.org.id) == before


async def test_settings_are_kept_per_organisation(world):
    changed = await world.warnings.settings.change(
        world.org.id, actor="tests", leads="60, 14 ,3", idle_days="45", quiet="21-7", timezone="Europe/Oslo",
        disable=["idle"],
    )  # fmt: skip
    assert changed.renewal_lead_days == (60, 14, 3) and changed.idle_days == 45
    assert (changed.quiet_start, changed.quiet_end, changed.timezone) == (21, 7, "Europe/Oslo")
    assert changed.enabled == frozenset({Kind.SEAT_WINDOW, Kind.RENEWAL})
    assert await world.warnings.settings.get(world.org.id) == changed
    other = await world.services.organisations.create("fabrikam", {"name": "Fabrikam"}, actor="op")
    assert (await world.warnings.settings.get(other.id)).renewal_lead_days == (30, 7)
