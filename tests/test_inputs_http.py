"""Whatever JSON reaches /api/messages, the answer is a 2xx or a clear 400 — never a 500, and never
an ERROR line with a traceback in the log (docs/security-input.md)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.conftest import message
from tests.fakes import said

DEPTH = 100_000
BODY_LIMIT = 1024**2  # aiohttp's default client_max_size


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


def _with(activity: dict[str, Any], field: str, raw_json: str) -> str:
    """The activity as JSON text with `field` set to `raw_json` (text json.dumps could not make)."""
    return json.dumps(activity)[:-1] + f', "{field}": {raw_json}}}'


@pytest.mark.parametrize("field", ["value", "channelData", "entities"])
@pytest.mark.parametrize("opening,closing", [("[", "]"), ('{"a":', "}")], ids=["lists", "objects"])
async def test_json_nested_100000_deep_is_a_clear_400(make_bot, connector, caplog, field, opening, closing):
    _, url = connector
    client = await make_bot()
    nested = opening * DEPTH + ("1" if closing == "}" else "") + closing * DEPTH
    body = _with(message("menu", service_url=url), field, nested)
    assert len(body) < BODY_LIMIT  # under the size limit: only the nesting is wrong
    with caplog.at_level(logging.INFO):
        response = await client.post("/api/messages", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert "nests lists or objects more than 64 levels" in (await response.json())["error"]
    assert _errors(caplog) == []


async def test_nesting_within_the_limit_is_served_and_just_beyond_it_refused(make_bot, connector, caplog):
    fake, url = connector
    client = await make_bot()
    # 64 levels in all: the activity object, its value and 62 lists inside.
    within = message("menu", service_url=url, value={"deep": json.loads("[" * 62 + "]" * 62)})
    beyond = message("menu", service_url=url, value={"deep": json.loads("[" * 63 + "]" * 63)})
    with caplog.at_level(logging.INFO):
        assert (await client.post("/api/messages", json=within)).status == 202
        await fake.wait_for(1)
        assert (await client.post("/api/messages", json=beyond)).status == 400
    assert "card belongs to a task that has finished" in said(fake.messages()[0])
    assert _errors(caplog) == []


@pytest.mark.parametrize(
    "change",
    [
        {"conversation": {"id": "personal-chat-alex\x00", "conversationType": "personal"}},
        {"from": {"id": "user-id-0\x00", "name": "Alex Wilber"}},
        {"channelData": {"tenant": {"id": "tenant\ud800"}}},
    ],
    ids=["conversation-id", "sender-id", "tenant-id"],
)
async def test_ids_with_control_characters_are_a_clear_400(make_bot, connector, caplog, change):
    fake, url = connector
    client = await make_bot()
    body = json.dumps({**message("menu", service_url=url), **change})
    with caplog.at_level(logging.INFO):
        response = await client.post("/api/messages", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert "control characters" in (await response.json())["error"]
    assert fake.messages() == [] and _errors(caplog) == []


@pytest.mark.parametrize("tenant", ["a-string", ["a", "list"], 5, {"id": ["not", "text"]}])
async def test_a_tenant_of_an_unexpected_shape_is_no_tenant(make_bot, connector, caplog, tenant):
    fake, url = connector
    client = await make_bot()
    body = {**message("menu", service_url=url, tenant_id=None), "channelData": {"tenant": tenant}}
    with caplog.at_level(logging.INFO):
        assert (await client.post("/api/messages", json=body)).status == 202
        await fake.wait_for(1)
    assert "What would you like to do?" in said(fake.messages()[0])  # local mode: known by from.id
    assert _errors(caplog) == []
