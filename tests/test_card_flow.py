"""A card flow declared as tables (`dialogs.base.CardFlow`), through the whole app: a click is parsed
once (a bad payload comes back on the card it was typed on, as typed, and nothing is done), acted on,
and answered with the verb's next card; an older card's click changes nothing; cancel still works."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cards.records import CARD_ID_KEY
from dialogs.base import END, ERROR, NOTICE, CardFlow, Outcome, Turn, Verb
from dialogs.catalogue import Task
from services.payloads import whole_number
from services.roles import Permission
from tests.cardcheck import assert_valid_card
from tests.conftest import message
from tests.fakes import card_of, said

SHELF, FORM = "shelf", "form"
OPEN_FORM, ADD, DONE = "shelf_open_form", "shelf_add", "shelf_done"


@dataclass(frozen=True)
class Boxes:
    count: int

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Boxes:
        return cls(
            whole_number(payload.get("count"), minimum=1, maximum=10, field="count", not_a_number="Enter 1 to 10.")
        )


class Shelf:
    """What the task changes (a service's stand-in): the boxes put on the shelf, in order."""

    def __init__(self) -> None:
        self.boxes: list[int] = []

    async def put(self, count: int) -> str:
        self.boxes.append(count)
        return f"Put {count} boxes on the shelf."


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "AdaptiveCard", "version": "1.5", "body": body, "actions": actions}


def _text(text: str) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True}


class ShelfFlow(CardFlow):
    title = "the shelf"
    home = SHELF
    token_key = "card"
    stale_message = "That card is out of date."

    def __init__(self, shelf: Shelf) -> None:
        super().__init__("shelf_flow")
        self._shelf = shelf
        self.screens = {SHELF: self._list, FORM: self._form}
        self.verbs = {
            OPEN_FORM: Verb(FORM, on=frozenset({SHELF})),
            ADD: Verb(SHELF, self._put, FORM, Boxes.of, ("count",), done=True, on=frozenset({FORM})),
            DONE: Verb(END, self._done),
        }

    async def _list(self, turn: Turn) -> dict[str, Any]:
        lines = [f"Boxes: {self._shelf.boxes}", str(turn.view.get(NOTICE, "")), str(turn.view.get(ERROR, ""))]
        token = turn.view["card"]
        actions = [
            {"type": "Action.Submit", "title": "Add boxes", "data": {"verb": OPEN_FORM, "card": token}},
            {"type": "Action.Submit", "title": "Done", "data": {"verb": DONE, "card": token}},
        ]
        return _card([_text(line) for line in lines if line], actions)

    async def _form(self, turn: Turn) -> dict[str, Any]:
        body = [
            _text("How many boxes?"),
            {"type": "Input.Text", "id": "count", "label": "Boxes", "value": str(turn.view.get("count", ""))},
        ]
        if turn.view.get(ERROR):
            body.append(_text(f"Problem: {turn.view[ERROR]}"))
        return _card(
            body, [{"type": "Action.Submit", "title": "Put", "data": {"verb": ADD, "card": turn.view["card"]}}]
        )

    async def _put(self, _turn: Turn, boxes: Boxes) -> Outcome:
        return await self._shelf.put(boxes.count)

    async def _done(self, _turn: Turn, _nothing: None) -> Outcome:
        return "Shelf closed."


def _tasks(shelf: Shelf):
    def build(_services: Any) -> list[Task]:
        return [Task("shelf", "Shelf", "tests only", ShelfFlow(shelf), Permission.READ_SUBSCRIPTIONS)]

    return build


async def _reply(client, fake, url, text: str | None = None, value: dict[str, Any] | None = None) -> dict[str, Any]:
    before = len(fake.messages())
    response = await client.post("/api/messages", json=message(text, service_url=url, value=value))
    assert response.status == 202
    await fake.wait_for(before + 1)
    reply = fake.messages()[-1]
    card = card_of(reply)
    if card is not None:
        assert_valid_card(card)
    return reply


def _data(reply: dict[str, Any], title: str) -> dict[str, Any]:
    card = card_of(reply)
    assert card is not None, reply
    (action,) = [action for action in card["actions"] if action["title"] == title]
    return dict(action["data"])


async def test_a_bad_payload_comes_back_on_its_card_and_changes_nothing(make_bot, connector) -> None:
    fake, url = connector
    shelf = Shelf()
    client = await make_bot(tasks=_tasks(shelf))
    listed = await _reply(client, fake, url, "shelf")
    assert "Boxes: []" in said(listed)
    form = await _reply(client, fake, url, value=_data(listed, "Add boxes"))
    for bad in ("twelve", "11", "0", 1e400, {"count": 3}):
        form = await _reply(client, fake, url, value={**_data(form, "Put"), "count": bad})
        assert "Problem: Enter 1 to 10." in said(form)
        assert shelf.boxes == []
    assert "twelve" not in said(form)  # each retry shows what was typed that time
    put = await _reply(client, fake, url, value={**_data(form, "Put"), "count": " 4 "})
    assert "Put 4 boxes on the shelf." in said(put) and "Boxes: [4]" in said(put)
    closed = await _reply(client, fake, url, value=_data(put, "Done"))
    assert said(closed) == "Shelf closed." and shelf.boxes == [4]


async def test_an_older_cards_click_changes_nothing_and_shows_where_the_task_stands(make_bot, connector) -> None:
    fake, url = connector
    shelf = Shelf()
    client = await make_bot(tasks=_tasks(shelf))
    listed = await _reply(client, fake, url, "shelf")
    form = await _reply(client, fake, url, value=_data(listed, "Add boxes"))
    # The list, clicked again. (The bot's live cards answer a click on a card it knows is replaced before
    # any task sees it; without the card id it stamps, the click reaches the task, which has its own guard.)
    unstamped = {key: item for key, item in _data(listed, "Add boxes").items() if key != CARD_ID_KEY}
    again = await _reply(client, fake, url, value=unstamped)
    assert "Problem: That card is out of date." in said(again) and "How many boxes?" in said(again)
    assert _data(again, "Put")["card"] != _data(form, "Put")["card"]  # each card shown has its own token
    put = await _reply(client, fake, url, value={**_data(again, "Put"), "count": "2"})
    assert shelf.boxes == [2] and "Boxes: [2]" in said(put)
    # A verb the current card does not offer (the form's "Put", with the list's own token) is stale too.
    elsewhere = await _reply(client, fake, url, value={**_data(put, "Add boxes"), "verb": ADD, "count": "1"})
    assert CARD_ID_KEY in _data(put, "Add boxes")
    assert "That card is out of date." in said(elsewhere) and "Boxes: [2]" in said(elsewhere)
    assert shelf.boxes == [2]


async def test_cancel_still_ends_a_card_flow(make_bot, connector) -> None:
    fake, url = connector
    shelf = Shelf()
    client = await make_bot(tasks=_tasks(shelf))
    listed = await _reply(client, fake, url, "shelf")
    await _reply(client, fake, url, value=_data(listed, "Add boxes"))
    cancelled = await _reply(client, fake, url, "cancel")
    assert "Cancelled the shelf" in said(cancelled) and shelf.boxes == []
