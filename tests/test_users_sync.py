"""Users sync with the sandbox: the admin from tenant creation, changes made elsewhere, licence
counts, paging interrupted mid-sync, the lease (one replica at a time), freshness and scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update

from services.db import utcnow
from services.errors import DomainError, PermissionDenied
from services.models import TenantUser, UserSyncState
from services.partner_center.errors import PartnerCenterError
from services.users.leases import LeaseService
from services.users.sync import UserSync
from tests.users_support import BASIC, BASIC_LICENCE, admin_caller, buy_licences

DOMAIN = "contosodemo.onmicrosoft.com"


async def _user_rows(services, org_id):
    async with services.sessions() as session:
        return {
            row.user_principal_name: row
            for row in await session.scalars(select(TenantUser).where(TenantUser.organisation_id == org_id))
        }


async def test_first_sync_brings_the_tenant_admin(services, demo_customer):
    result = await services.user_sync.sync(demo_customer.id)
    assert result.ran and result.complete and result.created == 1
    rows = await _user_rows(services, demo_customer.id)
    assert list(rows) == [f"admin@{DOMAIN}"]
    page = await services.users.list_users(await admin_caller(services, demo_customer))
    assert page.total == 1 and page.synced_at is not None and not page.syncing


async def test_created_renamed_deleted_elsewhere_and_licences_elsewhere_appear(services, demo_customer, sandbox):
    await buy_licences(services, demo_customer, BASIC, 3)
    await services.user_sync.sync(demo_customer.id)
    users = f"/customers/{demo_customer.partner_center_customer_id}/users"
    kim = await sandbox.admin(
        "POST", users, {"userPrincipalName": f"kim@{DOMAIN}", "displayName": "Kim", "usageLocation": "US"}
    )
    lee = await sandbox.admin("POST", users, {"userPrincipalName": f"lee@{DOMAIN}", "displayName": "Lee"})
    await services.user_sync.sync(demo_customer.id)
    assert set(await _user_rows(services, demo_customer.id)) == {f"admin@{DOMAIN}", f"kim@{DOMAIN}", f"lee@{DOMAIN}"}

    await sandbox.admin(
        "PATCH", f"{users}/{kim['id']}", {"userPrincipalName": f"kimberly@{DOMAIN}", "displayName": "Kimberly"}
    )
    await sandbox.admin("DELETE", f"{users}/{lee['id']}")
    await sandbox.admin("POST", f"{users}/{kim['id']}/licenses", {"assign": [BASIC_LICENCE], "remove": []})
    result = await services.user_sync.sync(demo_customer.id)
    assert result.removed == 1 and result.licence_users_refreshed >= 1
    rows = await _user_rows(services, demo_customer.id)
    assert set(rows) == {f"admin@{DOMAIN}", f"kimberly@{DOMAIN}"}
    assert rows[f"kimberly@{DOMAIN}"].display_name == "Kimberly"
    assert rows[f"kimberly@{DOMAIN}"].licence_sku_ids == [BASIC_LICENCE]
    pools = await services.licences.pools(await admin_caller(services, demo_customer), refresh=False)
    assert [(p.licence_sku_id, p.active, p.consumed, p.available) for p in pools] == [(BASIC_LICENCE, 3, 1, 2)]


async def test_interrupted_paging_resumes_without_duplicates_or_wrong_deletions(
    sqlite_services, sqlite_demo_customer, sandbox
):
    services, org = sqlite_services, sqlite_demo_customer
    users = f"/customers/{org.partner_center_customer_id}/users"
    for index in range(6):
        await sandbox.admin("POST", users, {"userPrincipalName": f"u{index}@{DOMAIN}", "displayName": f"User {index}"})
    services.user_sync.page_size = 2
    await services.user_sync.sync(org.id)  # 7 users known
    gone = await sandbox.admin("POST", users, {"userPrincipalName": f"gone@{DOMAIN}", "displayName": "Gone"})
    await services.user_sync.sync(org.id)
    await sandbox.admin("DELETE", f"{users}/{gone['id']}")
    # The second page of the next listing fails (every retry): the run stops half-way.
    await sandbox.admin(
        "POST", "/faults", {"kind": "error", "status": 503, "path": "/v1/customers/*/users", "nth": 2, "repeat": 10}
    )
    with pytest.raises(PartnerCenterError):
        await services.user_sync.sync(org.id)
    async with services.sessions() as session:
        state = await session.get(UserSyncState, org.id)
        assert state is not None and state.resume_link is not None and state.last_error
    assert len(await _user_rows(services, org.id)) == 8  # nothing deleted by a partial listing
    await sandbox.admin("DELETE", "/faults")
    result = await services.user_sync.sync(org.id)
    assert result.resumed and result.complete and result.removed == 1
    rows = await _user_rows(services, org.id)
    assert len(rows) == 7 and f"gone@{DOMAIN}" not in rows
    async with services.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(TenantUser))
        assert count == 7  # no duplicate rows


async def test_a_user_created_here_during_a_sync_is_not_swept(services, demo_customer):
    await services.user_sync.sync(demo_customer.id)
    async with services.sessions() as session:
        state = await session.get(UserSyncState, demo_customer.id)
        assert state is not None
        generation = state.generation
    # A row written now (by "new user") with an old generation survives the next sweep.
    async with services.sessions.begin() as session:
        session.add(
            TenantUser(
                organisation_id=demo_customer.id,
                user_id="fresh",
                user_principal_name=f"fresh@{DOMAIN}",
                seen_generation=generation - 1,
                licence_sku_ids=[],
            )
        )
    await services.user_sync._sweep(
        demo_customer.id,
        generation + 5,
        started_at=__import__("datetime").datetime(2000, 1, 1, tzinfo=__import__("datetime").UTC),
    )
    assert f"fresh@{DOMAIN}" in await _user_rows(services, demo_customer.id)


async def test_only_one_replica_holds_the_sync_lease(services, demo_customer):
    first, second = LeaseService(services.sessions, owner="a"), LeaseService(services.sessions, owner="b")
    assert await first.acquire("test-lease", 60)
    assert not await second.acquire("test-lease", 60)
    assert await first.acquire("test-lease", 60)  # the owner extends it
    await first.release("test-lease")
    assert await second.acquire("test-lease", 60)
    # While another replica holds an organisation's lease, a sync there does nothing.
    holder = LeaseService(services.sessions, owner="other-replica")
    assert await holder.acquire(f"users-sync:{demo_customer.id}", 60)
    result = await services.user_sync.sync(demo_customer.id)
    assert not result.ran
    assert await _user_rows(services, demo_customer.id) == {}


async def test_periodic_sync_runs_once_per_period_across_replicas(services, demo_customer):
    results = await services.user_sync.run_periodic_once()
    assert [r.organisation_id for r in results if r.ran] == [demo_customer.id]
    assert await services.user_sync.run_periodic_once() == []  # same replica: not due yet
    other = type(services.user_sync)(
        services.sessions, services.partner_center, LeaseService(services.sessions), services.alerts
    )
    assert await other.run_periodic_once() == []  # another replica: the period's lease is taken


async def test_a_never_synced_copy_is_synced_first_then_a_stale_one_queues_one_background_sync(services, demo_customer):
    caller = await admin_caller(services, demo_customer)
    page = await services.users.list_users(caller)
    assert page.total == 1 and page.synced_at is not None and not page.syncing  # read before answering
    assert await services.jobs.run_pending() == 0
    async with services.sessions() as session:  # six minutes later
        state = await session.get(UserSyncState, demo_customer.id)
        state.completed_at -= timedelta(minutes=6)
        await session.commit()
    stale = await services.users.list_users(caller)
    assert stale.total == 1 and stale.syncing  # shown at once, synced in the background
    again = await services.users.list_users(caller)
    assert not again.syncing  # the same job, not a second one
    assert await services.jobs.run_pending() == 1
    page = await services.users.list_users(caller)
    assert page.synced_at is not None and page.synced_at > stale.synced_at


async def test_users_are_admin_only_and_need_a_tenant(services, demo_customer):
    billing = await admin_caller(services, demo_customer, roles=frozenset({"billing"}))
    with pytest.raises(PermissionDenied):
        await services.users.list_users(billing)
    org = await services.organisations.create("fabrikam", {"name": "Fabrikam", "country": "GB"}, actor="t")
    caller = await admin_caller(services, org)
    with pytest.raises(DomainError, match="add tenant"):
        await services.users.list_users(caller)


async def test_search_and_paging(sqlite_services, sqlite_demo_customer, sandbox):
    services, org = sqlite_services, sqlite_demo_customer
    users = f"/customers/{org.partner_center_customer_id}/users"
    for index in range(12):
        await sandbox.admin(
            "POST", users, {"userPrincipalName": f"p{index:02}@{DOMAIN}", "displayName": f"Person {index:02}"}
        )
    await services.user_sync.sync(org.id)
    caller = await admin_caller(services, org)
    first = await services.users.list_users(caller)
    assert first.total == 13 and first.page_count == 2 and len(first.rows) == 10
    second = await services.users.list_users(caller, page=2)
    assert len(second.rows) == 3 and not {r.user_id for r in first.rows} & {r.user_id for r in second.rows}
    found = await services.users.list_users(caller, search="person 07")
    assert [r.display_name for r in found.rows] == ["Person 07"]
    assert (await services.users.list_users(caller, search="P11@")).total == 1
    assert (await services.users.list_users(caller, search="_")).total == 0  # literal, not a wildcard
    assert (await services.users.list_users(caller, search="%")).total == 0


async def test_concurrent_syncs_on_one_replica_run_once_and_sync_now_waits_its_turn(services, demo_customer):
    import asyncio

    results = await asyncio.gather(*(services.user_sync.sync(demo_customer.id) for _ in range(3)))
    assert sum(result.ran for result in results) == 1
    first, second = await asyncio.gather(
        services.user_sync.sync_now(demo_customer.id), services.user_sync.sync_now(demo_customer.id)
    )
    assert first.ran and second.ran


async def test_a_long_sync_extends_its_lease_and_stops_unswept_when_another_replica_took_it(
    sqlite_services, sqlite_demo_customer, sandbox
):
    from datetime import timedelta

    from sqlalchemy import update

    from services.db import utcnow
    from services.models import SyncLease

    services, org = sqlite_services, sqlite_demo_customer
    users = f"/customers/{org.partner_center_customer_id}/users"
    made = [
        await sandbox.admin("POST", users, {"userPrincipalName": f"u{index}@{DOMAIN}", "displayName": f"U{index}"})
        for index in range(4)
    ]
    services.user_sync.page_size = 2
    await services.user_sync.sync(org.id)  # 5 users known
    await sandbox.admin("DELETE", f"{users}/{made[3]['id']}")
    lease = f"users-sync:{org.id}"
    calls: list[str] = []

    class TakenOverAfterFirstPage(LeaseService):
        async def acquire(self, name: str, seconds: float) -> bool:
            calls.append(name)
            if len(calls) == 2:  # the run's lease expired meanwhile and another replica took it
                async with services.sessions.begin() as session:
                    await session.execute(
                        update(SyncLease)
                        .where(SyncLease.name == name)
                        .values(owner="other-replica", expires_at=utcnow() + timedelta(minutes=5))
                    )
            return await super().acquire(name, seconds)

    # This replica's sync, whose lease is taken over after its first page:
    this_replica = UserSync(
        services.sessions,
        services.partner_center,
        TakenOverAfterFirstPage(services.sessions, owner="this-replica"),
        services.alerts,
        page_size=2,
        microsoft_now=services.clock.now,
    )
    result = await this_replica.sync(org.id)
    assert result.ran and not result.complete and result.pages == 1 and calls == [lease, lease]
    assert len(await _user_rows(services, org.id)) == 5  # nothing swept by the partial run
    async with services.sessions() as session:
        state = await session.get(UserSyncState, org.id)
        holder = await session.get(SyncLease, lease)
        assert state is not None and state.resume_link is not None
        assert holder is not None and holder.owner == "other-replica"  # our release left it alone
    other = LeaseService(services.sessions, owner="other-replica")
    await other.release(lease)
    result = await services.user_sync.sync(org.id)
    assert result.resumed and result.complete and result.removed == 1
    assert f"u3@{DOMAIN}" not in await _user_rows(services, org.id)


async def test_a_stored_continuation_microsoft_no_longer_accepts_lists_afresh_in_the_same_run(
    sqlite_services, sqlite_demo_customer, sandbox, caplog
):
    services, org = sqlite_services, sqlite_demo_customer
    users = f"/customers/{org.partner_center_customer_id}/users"
    made = [
        await sandbox.admin("POST", users, {"userPrincipalName": f"v{index}@{DOMAIN}", "displayName": f"V{index}"})
        for index in range(4)
    ]
    services.user_sync.page_size = 2
    await services.user_sync.sync(org.id)
    await sandbox.admin("DELETE", f"{users}/{made[0]['id']}")
    await sandbox.admin(
        "POST", "/faults", {"kind": "error", "status": 503, "path": "/v1/customers/*/users", "nth": 2, "repeat": 10}
    )
    with pytest.raises(PartnerCenterError):
        await services.user_sync.sync(org.id)
    await sandbox.admin("DELETE", "/faults")
    async with services.sessions.begin() as session:  # e.g. a token from before an upgrade
        state = await session.get(UserSyncState, org.id)
        assert state is not None and state.resume_link is not None
        link = dict(state.resume_link)
        link["headers"] = [{"key": "MS-ContinuationToken", "value": "eyJzIjoieCIsIm8iOjJ9"}]
        state.resume_link = link
    with caplog.at_level("INFO", logger="services.users.sync"):
        result = await services.user_sync.sync(org.id)
    assert "resume link refused" in caplog.text
    assert result.resumed and result.complete and result.removed == 1
    rows = await _user_rows(services, org.id)
    assert len(rows) == 4 and f"v0@{DOMAIN}" not in rows


async def test_the_audit_window_follows_microsofts_clock_not_this_machines(services, demo_customer, sandbox):
    """With the built-in sandbox, Microsoft's "now" is its movable clock (`cspbot sandbox clock --advance`).
    Microsoft keeps 90 days of audit records and refuses a start before that: the first sync and a
    sync whose cursor is older than that (the clock moved a year on) read from the oldest kept record."""
    org = demo_customer
    sandbox.clock.set(datetime.now(UTC) + timedelta(days=60))  # well ahead of this machine's clock
    first = await services.user_sync.sync(org.id)
    assert first.ran and first.complete and first.created == 1
    await buy_licences(services, org, BASIC, 1)
    (admin,) = (await _user_rows(services, org.id)).values()
    await sandbox.admin(
        "POST",
        f"/customers/{org.partner_center_customer_id}/users/{admin.user_id}/licenses",
        {"assign": [BASIC_LICENCE], "remove": []},
    )
    assert (await services.user_sync.sync(org.id)).licence_users_refreshed == 1  # the cursor moves on
    sandbox.clock.advance(timedelta(days=365))
    again = await services.user_sync.sync(org.id)
    assert again.ran and again.complete
    assert await services.alerts.open_count() == 0


# --- Concurrency (issue 16): the listing beside everything else, a bound, 429s, the same result -------


async def _copy(services, org_id):
    """The organisation's copy, everything Microsoft decides, in a fixed order."""
    async with services.sessions() as session:
        rows = await session.scalars(
            select(TenantUser).where(TenantUser.organisation_id == org_id).order_by(TenantUser.user_id)
        )
        return [
            (r.user_id, r.user_principal_name, r.display_name, r.usage_location, r.state, r.licence_sku_ids)
            for r in rows
        ]


async def _forget_copy(services, org_id):
    """As if the organisation had never been synced: no rows, no generation, no audit cursor."""
    async with services.sessions.begin() as session:
        await session.execute(delete(TenantUser).where(TenantUser.organisation_id == org_id))
        await session.execute(delete(UserSyncState).where(UserSyncState.organisation_id == org_id))


def _count_in_flight(monkeypatch, client):
    """Partner Center calls of `client` in flight at once: the highest count seen, and the total."""
    seen = {"now": 0, "peak": 0, "calls": 0}
    call = client._call

    async def counted(*args, **kwargs):
        seen["now"] += 1
        seen["calls"] += 1
        seen["peak"] = max(seen["peak"], seen["now"])
        try:
            return await call(*args, **kwargs)
        finally:
            seen["now"] -= 1

    monkeypatch.setattr(client, "_call", counted)
    return seen


async def _tenant_of_21_with_5_licensed_elsewhere(services, org, sandbox):
    await buy_licences(services, org, BASIC, 6)
    users = f"/customers/{org.partner_center_customer_id}/users"
    made = [
        await sandbox.admin(
            "POST",
            users,
            {"userPrincipalName": f"c{index:02}@{DOMAIN}", "displayName": f"C {index}", "usageLocation": "US"},
        )
        for index in range(21)
    ]
    for user in made[::4][:5]:
        await sandbox.admin("POST", f"{users}/{user['id']}/licenses", {"assign": [BASIC_LICENCE], "remove": []})


async def test_a_concurrent_sync_stores_exactly_what_a_one_request_at_a_time_sync_does(
    services, demo_customer, sandbox, monkeypatch
):
    """Twelve pages and five users' licences: run one request at a time, then (from an empty copy) with
    eight in flight. Same rows, none lost or doubled, the same counts; and the bound holds."""
    org = demo_customer
    await _tenant_of_21_with_5_licensed_elsewhere(services, org, sandbox)
    sync = services.user_sync
    sync.page_size = 2
    in_flight = _count_in_flight(monkeypatch, services.partner_center)

    sync.concurrency = 1
    one_at_a_time = await sync.sync(org.id)
    sequential = await _copy(services, org.id)
    assert in_flight["peak"] == 1
    await _forget_copy(services, org.id)
    in_flight.update(peak=0, calls=0)
    sync.concurrency = 8
    concurrent = await sync.sync(org.id)

    assert await _copy(services, org.id) == sequential
    assert len(sequential) == 22 == len({row[0] for row in sequential})  # the admin + 21, each once
    assert sum(row[5] == [BASIC_LICENCE] for row in sequential) == 5
    fields = ("complete", "pages", "seen", "created", "removed", "licence_users_refreshed")
    assert [getattr(concurrent, name) for name in fields] == [getattr(one_at_a_time, name) for name in fields]
    assert (concurrent.pages, concurrent.licence_users_refreshed) == (11, 5)
    assert 2 <= in_flight["peak"] <= 8
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(TenantUser)) == 22


async def test_licences_changed_here_while_the_sync_asked_microsoft_are_kept(services, demo_customer, sandbox):
    """The sync stores the licences it fetched after the listing; our own unassign that landed after it
    asked Microsoft is newer than its answer and is not overwritten by it."""
    org = demo_customer
    await buy_licences(services, org, BASIC, 1)
    users = f"/customers/{org.partner_center_customer_id}/users"
    kim = await sandbox.admin(
        "POST", users, {"userPrincipalName": f"kim@{DOMAIN}", "displayName": "Kim", "usageLocation": "US"}
    )
    await services.user_sync.sync(org.id)
    await sandbox.admin("POST", f"{users}/{kim['id']}/licenses", {"assign": [BASIC_LICENCE], "remove": []})
    client = services.partner_center
    fetch = client.user_licenses

    async def answered_then_changed_here(customer_id, user_id):
        licences = await fetch(customer_id, user_id)
        async with services.sessions.begin() as session:  # meanwhile: our own unassign of Kim's licence
            await session.execute(
                update(TenantUser)
                .where(TenantUser.user_id == kim["id"].lower())
                .values(licence_sku_ids=[], licences_synced_at=utcnow())
            )
        return licences

    client.user_licenses = answered_then_changed_here
    try:
        result = await services.user_sync.sync(org.id)
    finally:
        del client.user_licenses
    assert result.complete and result.licence_users_refreshed == 0
    assert (await _user_rows(services, org.id))[f"kim@{DOMAIN}"].licence_sku_ids == []
    assert (await services.user_sync.sync(org.id)).licence_users_refreshed == 1  # the next run: Microsoft's
    assert (await _user_rows(services, org.id))[f"kim@{DOMAIN}"].licence_sku_ids == [BASIC_LICENCE]


async def test_a_throttled_concurrent_sync_waits_out_retry_after_and_loses_nothing(
    sqlite_services, sqlite_demo_customer, sandbox
):
    """Microsoft's per-customer budget is small: calls are answered 429 with Retry-After. The sync waits
    (the client's wait moves the sandbox's clock, which refills the budget) and stores everything."""
    from services.users.sync import UserSync

    services, org = sqlite_services, sqlite_demo_customer
    await _tenant_of_21_with_5_licensed_elsewhere(services, org, sandbox)
    await services.user_sync.sync(org.id)
    expected = await _copy(services, org.id)
    await _forget_copy(services, org.id)
    waits: list[float] = []
    outcomes: list[str] = []
    client = sandbox.waiting_client(waits, on_call=lambda _operation, outcome, _seconds: outcomes.append(outcome))
    sync = UserSync(
        services.sessions,
        client,
        LeaseService(services.sessions),
        services.alerts,
        page_size=2,
        concurrency=8,
        microsoft_now=sandbox.clock.now,
    )
    await sandbox.admin("POST", "/throttle", {"enabled": True, "capacity": 3, "refillPerSecond": 2})
    try:
        result = await sync.sync(org.id)
    finally:
        await sandbox.admin("POST", "/throttle", {"enabled": False, "capacity": 50, "refillPerSecond": 10})
    assert result.complete and result.licence_users_refreshed == 5
    assert await _copy(services, org.id) == expected
    assert outcomes.count("429") >= 1 and waits and all(wait >= 1 for wait in waits)  # Retry-After: whole seconds


async def test_users_sync_concurrency_is_a_setting_of_at_least_one(sqlite_url, sandbox, outbox):
    from pydantic import ValidationError

    from services.container import build_services
    from services.db import create_engine
    from services.settings import Settings

    assert Settings().users_sync_concurrency == 8
    with pytest.raises(ValidationError):
        Settings(users_sync_concurrency=0)
    engine = create_engine(sqlite_url)
    try:
        settings = Settings(database_url=sqlite_url, mail_outbox_dir=outbox, users_sync_concurrency=3)
        assert build_services(engine, settings, sandbox.client, sandbox.microsoft_clock).user_sync.concurrency == 3
    finally:
        await engine.dispose()
