"""The JSON codec for bot state: the SDK's dialog types round-trip, anything else fails loudly."""

from __future__ import annotations

import dataclasses
import json
import pickle
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from microsoft_agents.activity import (
    Activity,
    ActivityTypes,
    CardAction,
    ChannelAccount,
    ConversationAccount,
)
from microsoft_agents.hosting.core import (
    CardFactory,
    ConversationState,
    MessageFactory,
    Storage,
    StoreItem,
    TurnContext,
)
from microsoft_agents.hosting.dialogs import (
    DialogInstance,
    DialogSet,
    DialogState,
    DialogTurnStatus,
    PromptOptions,
)
from microsoft_agents.hosting.dialogs.choices import Choice, ListStyle
from microsoft_agents.testing import TestAdapter, TestFlow

from bot import state_codec
from bot.state_codec import StateCodecError
from tests.dialog_fixtures import NAME_QUESTION, SURVEY_DIALOG_ID, SURVEY_VERB, SurveyDialog

CARD = {
    "type": "AdaptiveCard",
    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
    "version": "1.5",
    "body": [
        {"type": "TextBlock", "text": "Pick a colour — «ünïcødé» 🙂", "wrap": True},
        {"type": "Input.Text", "id": "colour", "label": "Colour"},
        {"type": "Input.Number", "id": "amount", "min": 0, "value": 1.5},
        {"type": "Input.Toggle", "id": "agree", "title": "OK?", "value": "false"},
    ],
    "actions": [{"type": "Action.Submit", "title": "Send", "data": {"verb": "survey_colour", "n": None}}],
}


def round_trip(value: Any) -> Any:
    return state_codec.loads(state_codec.dumps(value))


def comparable(value: Any) -> Any:
    """PromptOptions has no __eq__: compare its attributes (recursively, through the other types)."""
    if isinstance(value, PromptOptions):
        return {"PromptOptions": {k: comparable(v) for k, v in vars(value).items()}}
    if isinstance(value, DialogState):
        return {"DialogState": [comparable(i) for i in value.dialog_stack]}
    if isinstance(value, DialogInstance):
        return {"DialogInstance": (value.id, comparable(value.state))}
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def card_prompt_options() -> PromptOptions:
    return PromptOptions(
        prompt=MessageFactory.attachment(CardFactory.adaptive_card(CARD)),
        retry_prompt=MessageFactory.text("Please use the card above, or type cancel."),
        choices=[
            Choice(value="red"),
            Choice(value="green", synonyms=["verde", "vert"]),
            Choice(
                value="blue",
                action=CardAction(type="imBack", title="Blue", value="blue"),
                synonyms=["bleu"],
            ),
        ],
        style=ListStyle.hero_card,
        validations={"max_length": 20, "pattern": None},
        number_of_attempts=2,
    )


def realistic_dialog_state() -> DialogState:
    """The shape the SDK keeps: component dialog → inner dialog state → waterfall + prompt."""
    waterfall = DialogInstance(
        id="survey_waterfall",
        state={
            "options": None,
            "values": {"name": "Ada", "instanceId": "b0c1d2", "amounts": [Decimal("12.50")]},
            "stepIndex": 1,
        },
    )
    prompt = DialogInstance(
        id="card_prompt",
        state={"options": card_prompt_options(), "state": {"attemptCount": 0}},
    )
    component = DialogInstance(id="survey_dialog", state={"dialogs": DialogState(dialog_stack=[waterfall, prompt])})
    return DialogState(dialog_stack=[component])


# ---- the SDK's types ------------------------------------------------------------------------------


def test_dialog_state_round_trips() -> None:
    original = realistic_dialog_state()
    decoded = round_trip(original)

    assert isinstance(decoded, DialogState)
    assert comparable(decoded) == comparable(original)
    component = decoded.dialog_stack[0]
    assert isinstance(component, DialogInstance)
    inner = component.state["dialogs"]
    assert isinstance(inner, DialogState)
    assert [i.id for i in inner.dialog_stack] == ["survey_waterfall", "card_prompt"]
    assert inner.dialog_stack[0].state["values"]["amounts"] == [Decimal("12.50")]


def test_empty_dialog_state_round_trips() -> None:
    decoded = round_trip({"DialogState": DialogState()})
    assert decoded == {"DialogState": DialogState(dialog_stack=[])}


def test_prompt_options_with_card_and_choices_round_trip() -> None:
    original = card_prompt_options()
    decoded = round_trip(original)

    assert isinstance(decoded, PromptOptions)
    assert comparable(decoded) == comparable(original)
    assert isinstance(decoded.prompt, Activity)
    assert decoded.prompt.attachments[0].content_type == "application/vnd.microsoft.card.adaptive"
    assert decoded.prompt.attachments[0].content == CARD
    assert decoded.retry_prompt.text == "Please use the card above, or type cancel."
    assert decoded.choices == original.choices
    assert all(isinstance(c, Choice) for c in decoded.choices)
    assert isinstance(decoded.choices[2].action, CardAction)
    assert decoded.style is ListStyle.hero_card
    assert decoded.validations == {"max_length": 20, "pattern": None}
    assert decoded.number_of_attempts == 2


def test_bare_prompt_options_round_trip() -> None:
    decoded = round_trip(PromptOptions())
    assert isinstance(decoded, PromptOptions)
    assert comparable(decoded) == comparable(PromptOptions())


def test_activity_round_trips() -> None:
    original = Activity(
        type=ActivityTypes.message,
        id="1700000000001",
        timestamp=datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC),
        channel_id="msteams",
        service_url="https://smba.trafficmanager.net/emea/",
        from_property=ChannelAccount(id="29:abc", name="Adele Vance", aad_object_id="0000-1"),
        recipient=ChannelAccount(id="28:bot", name="CSP Bot"),
        conversation=ConversationAccount(id="a:1;messageid=2", conversation_type="channel", is_group=True),
        text="héllo <at>CSP Bot</at>",
        value={"verb": "survey_colour", "colour": "teal", "nested": {"list": [1, None, True]}},
        channel_data={"tenant": {"id": "t-1"}},
        entities=[{"type": "mention", "mentioned": {"id": "28:bot", "name": "CSP Bot"}, "text": "<at>CSP Bot</at>"}],
        attachments=[CardFactory.adaptive_card(CARD)],
    )
    decoded = round_trip(original)
    assert isinstance(decoded, Activity)
    assert decoded == original
    assert decoded.timestamp == original.timestamp


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 2, 29, 8, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2024, 2, 29, 8, 0),  # naive stays naive
        date(1999, 12, 31),
    ],
    ids=["utc", "offset", "naive", "date"],
)
def test_datetimes_round_trip(value: datetime | date) -> None:
    decoded = round_trip({"when": value})["when"]
    assert type(decoded) is type(value)
    assert decoded == value
    if isinstance(value, datetime):
        assert decoded.utcoffset() == value.utcoffset()


@pytest.mark.parametrize("text", ["12.50", "0.1", "-0", "1E+3", "123456789012345678901234567890.000000001"])
def test_decimals_round_trip_exactly(text: str) -> None:
    value = Decimal(text)
    decoded = round_trip([value])[0]
    assert isinstance(decoded, Decimal)
    assert str(decoded) == str(value)  # same digits and exponent, not just equal


def test_tuples_come_back_as_lists() -> None:
    assert round_trip({"pair": (1, "two")}) == {"pair": [1, "two"]}


# ---- user data that looks like the codec's own ----------------------------------------------------


@pytest.mark.parametrize(
    "user_dict",
    [
        {"$type": "DialogState", "stack": []},
        {"$type": "Decimal", "value": "1"},
        {"$type": "dict", "items": {"a": 1}},
        {"$type": "no-such-tag"},
        {"$type": None},
        {"$type": {"$type": "datetime", "value": "2024-01-01T00:00:00"}},
        {"$type": "x", "items": "not a dict", "other": [{"$type": "Activity"}]},
    ],
    ids=["dialogstate", "decimal", "dict", "unknown", "none", "nested", "items-string"],
)
def test_user_dict_with_the_tag_key_survives(user_dict: dict[str, Any]) -> None:
    document = {"values": {"form": user_dict, "list": [user_dict]}}
    assert round_trip(document) == document
    wrapped = DialogInstance(id="w", state={"values": user_dict})
    assert round_trip(wrapped) == wrapped


# ---- what the codec refuses ---------------------------------------------------------------------


@dataclasses.dataclass
class Order:
    number: int


class Opaque:
    pass


@pytest.mark.parametrize(
    "value",
    [
        Order(7),
        object(),
        Opaque(),
        {1, 2},
        b"bytes",
        Order,  # a class, not an instance
        {"deep": [{"deeper": Order(1)}]},
        DialogInstance(id="x", state={"bad": object()}),
    ],
    ids=["dataclass", "object", "class-instance", "set", "bytes", "class", "nested", "in-dialog-instance"],
)
def test_unsupported_values_raise(value: Any) -> None:
    with pytest.raises(StateCodecError):
        state_codec.dumps(value)
    with pytest.raises(TypeError):  # StateCodecError is a TypeError, like json's own failure
        state_codec.dumps(value)


def test_dataclass_error_names_the_type() -> None:
    with pytest.raises(StateCodecError, match="Order"):
        state_codec.dumps({"values": {"order": Order(1)}})


@pytest.mark.parametrize(
    "document",
    [
        {"$type": "Pickle", "value": "gASV"},
        {"ok": [1, {"$type": "builtins.eval", "value": "1+1"}]},
        {"$type": "dict", "items": {"x": {"$type": "Unknown"}}},
    ],
    ids=["top", "nested", "inside-wrapped-dict"],
)
def test_unknown_tag_in_a_stored_document_raises(document: dict[str, Any]) -> None:
    with pytest.raises(StateCodecError):
        state_codec.loads(json.dumps(document))


def test_pickle_bytes_are_not_loaded() -> None:
    with pytest.raises(ValueError):
        state_codec.loads(pickle.dumps({"a": 1}))  # type: ignore[arg-type]


# ---- the stored text ----------------------------------------------------------------------------


def _json_native(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_native(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_native(v) for v in value)
    return value is None or isinstance(value, bool | int | float | str)


def test_dumps_is_plain_json_without_pickle() -> None:
    document = {
        "DialogState": realistic_dialog_state(),
        "when": datetime(2024, 1, 1, tzinfo=UTC),
        "user": {"$type": "mine"},
    }
    text = state_codec.dumps(document)
    assert isinstance(text, str)
    parsed = json.loads(text)
    assert _json_native(parsed)
    for marker in ("pickle", "__reduce__", "py/object", "copyreg", "\\x80\\x04"):
        assert marker not in text
    assert "🙂" in text  # unicode written as is


def test_codec_module_does_not_use_pickle() -> None:
    source = Path(state_codec.__file__).read_text(encoding="utf-8")
    assert "import pickle" not in source
    assert "pickle." not in source


# ---- the real thing: the state the SDK builds while a dialog runs ---------------------------------


class CodecMemoryStorage(Storage):
    """Keeps only the codec's JSON text, like the SQL store, so nothing survives by reference."""

    def __init__(self) -> None:
        self.documents: dict[str, str] = {}

    async def read(self, keys: list[str], *, target_cls: type[Any], **_kwargs: Any) -> dict[str, Any]:
        return {
            key: target_cls.from_json_to_store_item(state_codec.loads(self.documents[key]))
            for key in keys
            if key in self.documents
        }

    async def write(self, changes: dict[str, StoreItem]) -> None:
        for key, item in changes.items():
            self.documents[key] = state_codec.dumps(item.store_item_to_json())

    async def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.documents.pop(key, None)


async def test_sdk_dialog_state_survives_the_codec_between_turns() -> None:
    storage = CodecMemoryStorage()
    dialog = SurveyDialog()

    async def logic(context: TurnContext) -> None:
        conversation_state = ConversationState(storage)
        await conversation_state.load(context)
        dialogs = DialogSet(conversation_state.create_property("DialogState"))
        dialogs.add(dialog)
        dialog_context = await dialogs.create_context(context)
        result = await dialog_context.continue_dialog()
        if result.status == DialogTurnStatus.Empty and context.activity.text == "survey":
            await dialog_context.begin_dialog(SURVEY_DIALOG_ID)
        await conversation_state.save(context)

    def is_colour_card(activity: Activity) -> None:
        assert activity.attachments and activity.attachments[0].content["body"][1]["id"] == "colour"

    adapter = TestAdapter(channel_id="msteams")
    await (
        TestFlow(adapter, logic)
        .send("survey")
        .assert_reply(NAME_QUESTION)
        .send("Grace")
        .assert_reply(is_colour_card)
        .start_test()
    )

    (document,) = storage.documents.values()
    stored = json.loads(document)
    assert _json_native(stored)
    assert "Grace" in document and '"card_prompt"' in document
    decoded = state_codec.loads(document)
    assert isinstance(decoded["DialogState"], DialogState)
    assert state_codec.dumps(decoded) == document  # decode → encode is stable

    await (
        TestFlow(adapter, logic)
        .send("typed instead")
        .assert_reply("Please use the card above, or type cancel.")
        .send(Activity(type="message", value={"verb": SURVEY_VERB, "colour": "teal"}))
        .assert_reply("Thanks Grace, you like teal.")
        .start_test()
    )
    assert state_codec.loads(next(iter(storage.documents.values())))["DialogState"] == DialogState()
