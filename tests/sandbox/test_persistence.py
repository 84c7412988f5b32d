"""The sandbox keeps its state in its own tables: a restart on the same database file finds it all,
a moved clock survives too, and availability ids do not (they rotate, as Microsoft warns)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import inspect

from sandbox import SandboxClock, SandboxSettings, create_sandbox_app, start_sandbox
from services.db import create_engine
from tests.sandbox.conftest import BASIC, BASIC_LICENCE, START, TOKEN, Api


async def _serve(database_url: str, clock: SandboxClock | None, settings: SandboxSettings | None = None) -> TestClient:
    client = TestClient(
        TestServer(create_sandbox_app(database_url=database_url, accepted_token=TOKEN, clock=clock, settings=settings))
    )
    await client.start_server()
    return client


async def test_state_survives_a_restart_on_the_same_database(sandbox_db: str) -> None:
    clock = SandboxClock(frozen_at=START)
    first = await _serve(sandbox_db, clock)
    try:
        api = Api(first)
        created = await api.new_customer("keepcorp")
        await api.attest(created["id"])
        subscription = await api.buy(created["id"], BASIC, 3)
        admin = (await api.ok("GET", f"/v1/customers/{created['id']}/users"))["items"][0]
        await api.ok("POST", f"/v1/customers/{created['id']}/users/{admin['id']}/licenseupdates",
                     {"licensesToAssign": [{"skuId": BASIC_LICENCE}]}, status=201)  # fmt: skip
        items_before = (await api.ok("GET", f"/v1/products/{BASIC[0]}/skus/{BASIC[1]}/availabilities?country=US"))[
            "items"
        ]
    finally:
        await first.close()

    second = await _serve(sandbox_db, clock)
    try:
        api = Api(second)
        assert (await api.ok("GET", f"/v1/customers/{created['id']}"))["companyProfile"]["domain"] == (
            "keepcorp.onmicrosoft.com"
        )
        again = await api.subscription(created["id"], subscription["id"])
        assert again == subscription | {"attributes": again["attributes"]}
        assert again["attributes"]["etag"] == subscription["attributes"]["etag"]
        sku = (await api.ok("GET", f"/v1/customers/{created['id']}/subscribedskus"))["items"][0]
        assert (sku["activeUnits"], sku["consumedUnits"]) == (3, 1)
        assert (await api.call("HEAD", "/v1/domains/keepcorp.onmicrosoft.com"))[0] == 200
        assert len((await api.ok("GET", "/v1/auditrecords?startDate=2025-03-01"))["items"]) == 5
        items_after = (await api.ok("GET", f"/v1/products/{BASIC[0]}/skus/{BASIC[1]}/availabilities?country=US"))[
            "items"
        ]
        assert {i["id"] for i in items_after}.isdisjoint({i["id"] for i in items_before})  # a new process salt
        await api.patch(again, quantity=4)  # an old subscription stays usable after the rotation
    finally:
        await second.close()

    engine = create_engine(sandbox_db)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert sorted(tables) == ["sandbox_audit_records", "sandbox_documents"]
    finally:
        await engine.dispose()


async def test_a_moved_running_clock_survives_a_restart(sandbox_db: str) -> None:
    settings = SandboxSettings(availability_salt="fixed")
    first = await _serve(sandbox_db, None, settings)
    try:
        moved = await Api(first).admin("POST", "/clock", {"advance": "P400D"})
        assert moved["frozen"] is False
    finally:
        await first.close()
    second = await _serve(sandbox_db, None, settings)
    try:
        now = await Api(second).admin("GET", "/clock")
        reported = datetime.fromisoformat(now["now"].replace("Z", "+00:00"))
        # Compared with real time only as an order of magnitude, never as a duration measurement.
        assert reported > datetime.now(UTC) + timedelta(days=300)
    finally:
        await second.close()


async def test_the_sandbox_serves_on_its_own_port(sandbox_db: str) -> None:
    running = await start_sandbox(database_url=sandbox_db, accepted_token=TOKEN, port=0)
    try:
        assert running.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            async with session.head(
                f"{running.url}/v1/domains/contoso.onmicrosoft.com", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as response:
                assert response.status == 200
    finally:
        await running.close()


async def test_the_sandbox_runs_on_sqlite_and_postgresql(database_url: str) -> None:
    """The same flow and restart on both of the product's database back ends (licence counts too:
    they are read in the database from the users holding a licence)."""
    clock = SandboxClock(frozen_at=START)
    first = await _serve(database_url, clock)
    try:
        api = Api(first)
        created = await api.new_customer("bothdbs")
        await api.attest(created["id"])
        subscription = await api.buy(created["id"], BASIC, 2)
        for index in range(3):
            await api.ok(
                "POST",
                f"/v1/customers/{created['id']}/users",
                {"usageLocation": "US", "userPrincipalName": f"u{index}@bothdbs.onmicrosoft.com",
                 "displayName": f"User {index}", "passwordProfile": {"password": "Str0ng!pass"}},
                status=201,
            )  # fmt: skip
        listed = await api.ok("GET", f"/v1/customers/{created['id']}/users")
        licensed = next(u for u in listed["items"] if u["userPrincipalName"].startswith("u1@"))
        await api.ok(
            "POST",
            f"/v1/customers/{created['id']}/users/{licensed['id']}/licenseupdates",
            {"licensesToAssign": [{"skuId": BASIC_LICENCE}]},
            status=201,
        )
    finally:
        await first.close()
    second = await _serve(database_url, clock)
    try:
        api = Api(second)
        assert (await api.subscription(created["id"], subscription["id"]))["quantity"] == 2
        users = await api.ok("GET", f"/v1/customers/{created['id']}/users")
        assert [u["userPrincipalName"] for u in users["items"]] == [
            "admin@bothdbs.onmicrosoft.com",
            "u0@bothdbs.onmicrosoft.com",
            "u1@bothdbs.onmicrosoft.com",
            "u2@bothdbs.onmicrosoft.com",
        ]
        (sku,) = (await api.ok("GET", f"/v1/customers/{created['id']}/subscribedskus"))["items"]
        assert (sku["productSku"]["id"], sku["activeUnits"], sku["consumedUnits"]) == (BASIC_LICENCE, 2, 1)
    finally:
        await second.close()
