"""Whatever JSON reaches /api/messages, the answer is a 2xx or a clear 400 — never a 500, and never
an ERROR line with a traceback in the log (docs/security-input.md)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import message
from tests.fakes import said

DEPTH = 100_000
BODY_LIMIT = 1024**2  # aiohttp's default client_max_size


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """ERROR lines, each with its traceback (if any) so a failure shows what broke."""
    formatter = logging.Formatter()
    return [
        record.getMessage() + ("\n" + formatter.formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
        if record.levelno >= logging.ERROR
    ]


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


# ---- any JSON in an activity's fields -------------------------------------------------------------


def _card_verbs() -> list[str]:
    """Every verb the bot's cards send (module constants of cards/*), so examples reach the tasks."""
    import cards.approvals
    import cards.billing
    import cards.ordering
    import cards.subscriptions
    import cards.tenant
    import cards.users

    modules = (cards.approvals, cards.billing, cards.ordering, cards.subscriptions, cards.tenant, cards.users)
    return sorted(
        {
            value
            for module in modules
            for name, value in vars(module).items()
            if name.isupper() and isinstance(value, str) and value.replace("_", "").isalpha() and value.islower()
        }
    )


VERBS = _card_verbs()
COMMANDS = ["menu", "help", "cancel", "subscriptions", "users", "new user", "assign", "billing", "add tenant",
            "add subscription", "my services", "billing 2026-09", "billing this year"]  # fmt: skip
KEYS = ["verb", "command", "subscription_id", "approval_id", "quantity", "page", "etag", "key", "reason",
        "search", "search_was", "user_id", "user_ids", "entry_ids", "licence", "licences", "request_key",
        "first_month", "last_month", "choice", "format", "card", "value", "plan", "rev", "addon"]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["", "1", "0", "-1", "1e400", "²", "2026-13", "0000-01", "\x00", "\ud800", "x" * 300])
)
ANY_JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)
CARD_VALUE = st.fixed_dictionaries(
    {"verb": st.sampled_from(VERBS) | ANY_JSON}, optional={k: ANY_JSON for k in KEYS if k != "verb"}
)
INVOKE = st.one_of(
    st.fixed_dictionaries(
        {
            "name": st.just("adaptiveCard/action"),
            "value": st.fixed_dictionaries(
                {"action": st.fixed_dictionaries({"verb": st.sampled_from(VERBS) | ANY_JSON, "data": ANY_JSON})}
            )
            | ANY_JSON,
        }
    ),
    st.fixed_dictionaries(
        {
            "name": st.just("composeExtension/query"),
            "value": st.fixed_dictionaries({"commandId": ANY_JSON, "parameters": ANY_JSON}) | ANY_JSON,
        }
    ),
    st.fixed_dictionaries(
        {
            "name": st.just("fileConsent/invoke"),
            "value": st.fixed_dictionaries({"action": ANY_JSON, "context": ANY_JSON, "uploadInfo": ANY_JSON})
            | ANY_JSON,
        }
    ),
    st.fixed_dictionaries({"name": st.text(min_size=1, max_size=30), "value": ANY_JSON}),
)
ACTIVITY = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("message")},
        optional={"text": st.sampled_from(COMMANDS) | st.text(min_size=1, max_size=40), "value": CARD_VALUE | ANY_JSON},
    ),
    st.builds(lambda invoke: {"type": "invoke", **invoke}, INVOKE),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["conversationUpdate", "installationUpdate", "messageReaction", "event", "typing"])},
        optional={
            "value": ANY_JSON,
            "name": st.text(min_size=1, max_size=20),
            "action": st.text(min_size=1, max_size=9),
        },
    ),
)


@pytest.fixture
async def shared_bot(make_bot_on_database, demo_customer):  # noqa: ARG001 - a fixture this one needs for its effect
    """One app for every example of the test (fixtures are made once per test, not per example):
    the examples share its conversation, as one long chat would."""
    return await make_bot_on_database()


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(fields=ACTIVITY, channel_data=st.none() | st.dictionaries(st.sampled_from(["tenant", "team"]), ANY_JSON))
@example(fields={"type": "invoke", "name": "composeExtension/query", "value": {"parameters": 5}}, channel_data=None)
@example(fields={"type": "invoke", "name": "composeExtension/query", "value": {"parameters": True}}, channel_data=None)
@example(fields={"type": "message", "text": "subscriptions"}, channel_data=None)
@example(fields={"type": "message", "value": {"verb": {"a": 1}}}, channel_data=None)  # while its card waits
@example(fields={"type": "message", "text": "menu"}, channel_data={"tenant": "not-an-object"})
async def test_any_json_in_an_activity_gets_an_answer_never_a_500_or_a_traceback(
    shared_bot, connector, caplog, fields, channel_data
):
    _, url = connector
    body = {**message(None, service_url=url), **fields}
    if channel_data is not None:
        body["channelData"] = {**body["channelData"], **channel_data}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        response = await shared_bot.post(
            "/api/messages", data=json.dumps(body), headers={"Content-Type": "application/json"}
        )
    # 501: an invoke name the bot does not implement, the answer the Bot Framework expects for it.
    assert response.status in (200, 202, 400, 501), (response.status, await response.text())
    assert _errors(caplog) == [], body


async def test_an_over_long_field_in_an_invoke_is_answered_with_a_message(make_bot, connector, caplog):
    _, url = connector
    client = await make_bot()
    long_text = "x" * 8_001
    card_action = {"action": {"type": "Action.Execute", "verb": "approval_approve", "data": {"approval_id": long_text}}}
    compose = {"commandId": "searchBills", "parameters": [{"name": "query", "value": long_text}]}
    with caplog.at_level(logging.INFO):
        answers = []
        for name, value in (("adaptiveCard/action", card_action), ("composeExtension/query", compose)):
            body = {**message(None, service_url=url), "type": "invoke", "name": name, "value": value}
            response = await client.post("/api/messages", json=body)
            assert response.status == 200
            answers.append(await response.json())
    assert "too long" in answers[0]["value"] and "at most 8,000 characters" in answers[0]["value"]
    assert answers[1]["composeExtension"]["type"] == "message" and "too long" in answers[1]["composeExtension"]["text"]
    assert _errors(caplog) == []
