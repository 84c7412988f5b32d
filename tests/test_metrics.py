"""GET /metrics: the counters move when a turn is handled and when a Partner Center call fails or is
throttled, the queue gauges show the database, no label carries data, and only a scraper may read it
(a bearer token, or a direct request from this machine)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.db import utcnow
from services.mail import MAIL_JOB
from services.models import MailMessage
from services.partner_center.errors import PartnerCenterError
from services.settings import Settings
from tests.conftest import message, runtime_of
from tests.scrape import scrape, value

TOKEN = "a-scraper-token-0123456789"


async def test_a_handled_message_and_invoke_are_counted_and_timed_by_kind(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    before = await scrape(client)
    assert value(before, "cspbot_turns_total", kind="message", status="202") == 0
    assert value(before, "cspbot_turns_limit") == 64
    assert value(before, "cspbot_turns_working_limit") == 4

    assert (await client.post("/api/messages", json=message("menu", service_url=url))).status == 202
    invoke = {**message(None, service_url=url), "type": "invoke", "name": "adaptiveCard/action", "value": {}}
    invoked = await client.post("/api/messages", json=invoke)
    assert invoked.status == 200
    bad = await client.post("/api/messages", data=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status == 400

    after = await scrape(client)
    assert value(after, "cspbot_turns_total", kind="message", status="202") == 1
    assert value(after, "cspbot_turn_seconds_count", kind="message") == 1
    assert value(after, "cspbot_turn_seconds_sum", kind="message") > 0
    assert value(after, "cspbot_turns_total", kind="invoke", status="200") == 1
    assert value(after, "cspbot_turns_total", kind="unknown", status="400") == 1
    assert value(after, "cspbot_turns_in_flight") == 0
    assert value(after, "cspbot_turns_working") == 0
    assert value(after, "cspbot_build_info", version=runtime_version()) == 1


def runtime_version() -> str:
    from app import version

    return version()


async def test_partner_center_calls_by_operation_and_outcome_failures_and_429s(make_bot, sandbox):
    client = await make_bot()
    partner_center = runtime_of(client).services.partner_center
    customer = "0a1b2c3d-0000-4000-8000-0000000000aa"
    await sandbox.admin(
        "POST", "/faults", {"kind": "error", "status": 503, "path": f"/v1/customers/{customer}", "repeat": 9}
    )
    await sandbox.admin("POST", "/faults", {"kind": "throttle", "path": "/v1/domains/*", "retryAfter": 0})
    before = await scrape(client)

    with pytest.raises(PartnerCenterError):
        await partner_center.get_customer(customer)  # 503 on every attempt: it gives up
    assert await partner_center.domain_is_taken("contoso.onmicrosoft.com")  # 429 once, then answered

    after = await scrape(client)
    failed = value(after, "cspbot_partner_center_requests_total", operation="GET customers/{id}", outcome="503")
    assert (
        failed - value(before, "cspbot_partner_center_requests_total", operation="GET customers/{id}", outcome="503")
        == 5
    )
    assert value(after, "cspbot_partner_center_request_seconds_count", operation="GET customers/{id}") >= 5
    assert value(after, "cspbot_partner_center_requests_total", operation="HEAD domains/{id}", outcome="429") == 1
    assert value(after, "cspbot_partner_center_requests_total", operation="HEAD domains/{id}", outcome="200") == 1
    assert value(after, "cspbot_partner_center_throttled_total", operation="HEAD domains/{id}") == 1
    text = await (await client.get("/metrics")).text()
    assert customer not in text and "contoso" not in text  # no ids or names in labels


async def test_the_queue_gauges_show_waiting_jobs_and_mail(make_bot):
    client = await make_bot(run_jobs=False)
    services = runtime_of(client).services
    now = utcnow()
    await services.jobs.submit(
        MAIL_JOB,
        idempotency_key="waiting-since-two-minutes",
        payload={"message_id": 0},
        organisation_id=None,
        requested_by="test",
        run_after=now - timedelta(minutes=2),
    )
    async with services.sessions.begin() as session:
        for status, age in (("queued", timedelta(minutes=10)), ("queued", timedelta(0)), ("failed", timedelta(days=1))):
            session.add(MailMessage(to_address="a@example.com", subject="s", status=status, created_at=now - age))

    samples = await scrape(client)
    assert value(samples, "cspbot_jobs_waiting") == 1 and value(samples, "cspbot_jobs_running") == 0
    assert 120 <= value(samples, "cspbot_jobs_oldest_waiting_seconds") < 180
    assert value(samples, "cspbot_mail_queued") == 2 and value(samples, "cspbot_mail_failed") == 1
    assert 600 <= value(samples, "cspbot_mail_oldest_queued_seconds") < 660


async def test_with_a_token_only_its_bearer_reads_the_metrics(make_bot):
    client = await make_bot(settings={"metrics_token": TOKEN})
    missing = await client.get("/metrics")
    assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in await missing.text()
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
    assert wrong.status == 401
    samples = await scrape(client, Authorization=f"Bearer {TOKEN}")
    assert value(samples, "cspbot_turns_limit") == 64


async def test_without_a_token_only_a_direct_request_from_this_machine_reads_them(make_bot):
    client = await make_bot()
    await scrape(client)  # the test client connects from 127.0.0.1
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):  # came through a proxy: maybe from anywhere
        refused = await client.get("/metrics", headers={header: "203.0.113.7"})
        assert refused.status == 403 and "METRICS_TOKEN" in (await refused.json())["error"]


def test_a_metrics_token_is_long_enough_and_never_shown():
    with pytest.raises(ValidationError) as refused:
        Settings(metrics_token="short")
    assert "METRICS_TOKEN" in str(refused.value)
    settings = Settings(metrics_token=f"  {TOKEN} ")
    assert settings.metrics_token.get_secret_value() == TOKEN and TOKEN not in repr(settings)
