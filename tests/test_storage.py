"""Conformance of SqlStorage to the SDK's Storage contract, plus its e-tag rules, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from microsoft_agents.hosting.core.state.agent_state import CachedAgentState
from microsoft_agents.hosting.core.storage import StoreItem

from bot.storage import ANY_ETAG, CREATE_ONLY, SqlStorage, StateConflictError
from services.db import create_engine, create_session_factory

PUNCTUATION_KEY = "!@#$%^&*()~/\\><,.?'\"[]{}|-_+="


class Note(StoreItem):
    """A minimal item of our own: a counter and a text."""

    def __init__(self, text: str = "", count: int = 0) -> None:
        self.text = text
        self.count = count

    def store_item_to_json(self) -> dict[str, Any]:
        return {"text": self.text, "count": self.count}

    @staticmethod
    def from_json_to_store_item(json_data: dict[str, Any]) -> Note:
        return Note(json_data["text"], json_data["count"])


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[SqlStorage]:
    engine = create_engine(database_url)
    yield SqlStorage(create_session_factory(engine))
    await engine.dispose()


def state(**values: Any) -> CachedAgentState:
    return CachedAgentState(dict(values))


async def read_one(storage: SqlStorage, key: str, target_cls: type[Any] = CachedAgentState) -> Any:
    items = await storage.read([key], target_cls=target_cls)
    return items.get(key)


# ---- create / read ------------------------------------------------------------------------------


async def test_create_then_read_back_equal_with_an_etag(storage: SqlStorage) -> None:
    item = state(DialogState={"step": 1}, name="Ada")
    await storage.write({"msteams/conversations/a": item})
    assert item.e_tag  # the written item is stamped too

    loaded = await read_one(storage, "msteams/conversations/a")
    assert isinstance(loaded, CachedAgentState)
    assert loaded.state == {"DialogState": {"step": 1}, "name": "Ada"}
    assert loaded.e_tag == item.e_tag
    assert not loaded.is_changed


async def test_own_store_item_round_trips(storage: SqlStorage) -> None:
    await storage.write({"note": Note("hello", 3)})
    loaded = await read_one(storage, "note", Note)
    assert isinstance(loaded, Note)
    assert (loaded.text, loaded.count) == ("hello", 3)
    assert loaded.e_tag


async def test_missing_keys_are_omitted(storage: SqlStorage) -> None:
    await storage.write({"present": Note("x")})
    items = await storage.read(["present", "absent", "also-absent"], target_cls=Note)
    assert set(items) == {"present"}
    assert await storage.read(["nothing-here"], target_cls=Note) == {}


# ---- e-tags -------------------------------------------------------------------------------------


async def test_update_with_current_etag_succeeds_and_bumps_it(storage: SqlStorage) -> None:
    await storage.write({"k": Note("v1", 1)})
    loaded = await read_one(storage, "k", Note)
    first_etag = loaded.e_tag

    loaded.text, loaded.count = "v2", 2
    await storage.write({"k": loaded})
    assert loaded.e_tag != first_etag

    again = await read_one(storage, "k", Note)
    assert (again.text, again.count) == ("v2", 2)
    assert again.e_tag == loaded.e_tag != first_etag


async def test_stale_etag_conflicts_and_keeps_the_stored_value(storage: SqlStorage) -> None:
    await storage.write({"k": Note("original", 1)})
    first = await read_one(storage, "k", Note)
    second = await read_one(storage, "k", Note)

    first.text = "first writer"
    await storage.write({"k": first})

    second.text = "second writer"
    with pytest.raises(StateConflictError):
        await storage.write({"k": second})

    stored = await read_one(storage, "k", Note)
    assert stored.text == "first writer"
    assert stored.e_tag == first.e_tag


async def test_malformed_etag_conflicts(storage: SqlStorage) -> None:
    await storage.write({"k": Note("original")})
    item = Note("changed")
    item.e_tag = "not-a-version"
    with pytest.raises(StateConflictError):
        await storage.write({"k": item})
    assert (await read_one(storage, "k", Note)).text == "original"


async def test_conditional_write_of_a_missing_key_conflicts(storage: SqlStorage) -> None:
    item = Note("ghost")
    item.e_tag = "1"  # read once, deleted since
    with pytest.raises(StateConflictError):
        await storage.write({"gone": item})
    assert await storage.read(["gone"], target_cls=Note) == {}


@pytest.mark.parametrize("etag", [ANY_ETAG, None], ids=["star", "none"])
async def test_star_or_no_etag_overwrites(storage: SqlStorage, etag: str | None) -> None:
    await storage.write({"k": Note("original")})
    stale = await read_one(storage, "k", Note)
    await storage.write({"k": Note("someone else")})  # makes `stale` out of date

    stale.text = "unconditional"
    stale.e_tag = etag
    await storage.write({"k": stale})
    assert (await read_one(storage, "k", Note)).text == "unconditional"

    fresh = Note("brand new")
    fresh.e_tag = etag
    await storage.write({"new-key": fresh})  # also creates
    assert (await read_one(storage, "new-key", Note)).text == "brand new"


async def test_create_only_inserts_once(storage: SqlStorage) -> None:
    created = Note("first")
    created.e_tag = CREATE_ONLY
    await storage.write({"k": created})
    assert created.e_tag not in (None, CREATE_ONLY)

    duplicate = Note("second")
    duplicate.e_tag = CREATE_ONLY
    with pytest.raises(StateConflictError):
        await storage.write({"k": duplicate})
    assert (await read_one(storage, "k", Note)).text == "first"


async def test_cached_agent_state_etag_flows_through_read_and_write(storage: SqlStorage) -> None:
    """The way the bot uses it: a new conversation writes CREATE_ONLY, later turns write with the read e-tag."""
    new = CachedAgentState()
    new.state["DialogState"] = {"stack": []}
    new.e_tag = CREATE_ONLY
    await storage.write({"msteams/conversations/c": new})

    turn_a = await read_one(storage, "msteams/conversations/c")
    turn_b = await read_one(storage, "msteams/conversations/c")
    turn_a.state["DialogState"] = {"stack": ["a"]}
    await storage.write({"msteams/conversations/c": turn_a})
    turn_b.state["DialogState"] = {"stack": ["b"]}
    with pytest.raises(StateConflictError):
        await storage.write({"msteams/conversations/c": turn_b})
    assert (await read_one(storage, "msteams/conversations/c")).state == {"DialogState": {"stack": ["a"]}}


async def test_two_concurrent_writers_with_the_same_etag_one_wins(storage: SqlStorage) -> None:
    await storage.write({"k": Note("start", 0)})
    writers = [await read_one(storage, "k", Note) for _ in range(2)]
    assert writers[0].e_tag == writers[1].e_tag
    for number, writer in enumerate(writers, start=1):
        writer.text, writer.count = f"writer {number}", number

    results = await asyncio.gather(*(storage.write({"k": w}) for w in writers), return_exceptions=True)

    conflicts = [r for r in results if isinstance(r, StateConflictError)]
    successes = [i for i, r in enumerate(results) if r is None]
    assert len(successes) == 1 and len(conflicts) == 1, results
    winner = writers[successes[0]]
    stored = await read_one(storage, "k", Note)
    assert (stored.text, stored.count) == (winner.text, winner.count)
    assert stored.e_tag == winner.e_tag


async def test_many_concurrent_writers_with_the_same_etag_one_wins(storage: SqlStorage) -> None:
    await storage.write({"k": Note("start", 0)})
    writers = [await read_one(storage, "k", Note) for _ in range(8)]
    for number, writer in enumerate(writers, start=1):
        writer.count = number

    results = await asyncio.gather(*(storage.write({"k": w}) for w in writers), return_exceptions=True)

    assert sum(r is None for r in results) == 1, results
    assert all(r is None or isinstance(r, StateConflictError) for r in results), results
    winner = writers[results.index(None)]
    assert (await read_one(storage, "k", Note)).count == winner.count


async def test_concurrent_create_only_writers_one_wins(storage: SqlStorage) -> None:
    """What two replicas do on a brand-new conversation: both write create-only, one must lose."""
    for round_number in range(5):
        key = f"new-conversation-{round_number}"
        writers = [Note(f"creator {i}", i) for i in range(4)]
        for writer in writers:
            writer.e_tag = CREATE_ONLY
        results = await asyncio.gather(*(storage.write({key: w}) for w in writers), return_exceptions=True)
        assert sum(r is None for r in results) == 1, results
        assert all(r is None or isinstance(r, StateConflictError) for r in results), results
        assert (await read_one(storage, key, Note)).count == results.index(None)


# Concurrent unconditional writers race inside SqlStorage (select, then insert or update); a single
# round may happen to run them one after the other, so each test runs several rounds.
RACE_ROUNDS = 10


@pytest.mark.parametrize("etag", [ANY_ETAG, None], ids=["star", "none"])
async def test_concurrent_unconditional_writes_to_a_new_key_all_succeed(storage: SqlStorage, etag: str | None) -> None:
    """`*` / no e-tag means "last writer wins": it must never report a conflict."""
    for round_number in range(RACE_ROUNDS):
        key = f"race-new-{round_number}"
        writers = [Note(f"writer {i}", i) for i in range(3)]
        for writer in writers:
            writer.e_tag = etag
        results = await asyncio.gather(*(storage.write({key: w}) for w in writers), return_exceptions=True)
        assert results == [None, None, None], f"round {round_number}: {results}"
        assert (await read_one(storage, key, Note)).count in {0, 1, 2}


async def test_concurrent_unconditional_writes_get_distinct_etags(storage: SqlStorage) -> None:
    """Each write is a new version: two writes must never be stamped with the same e-tag, or a
    reader holding that e-tag could overwrite the other writer's value without a conflict."""
    for round_number in range(RACE_ROUNDS):
        key = f"race-existing-{round_number}"
        await storage.write({key: Note("start")})
        writers = [Note("writer A", 1), Note("writer B", 2)]
        for writer in writers:
            writer.e_tag = ANY_ETAG
        results = await asyncio.gather(*(storage.write({key: w}) for w in writers), return_exceptions=True)
        assert results == [None, None], results
        assert writers[0].e_tag != writers[1].e_tag, f"round {round_number}: both stamped {writers[0].e_tag}"
        stored = await read_one(storage, key, Note)
        owner = next(w for w in writers if w.count == stored.count)
        assert stored.e_tag == owner.e_tag


# ---- delete -------------------------------------------------------------------------------------


async def test_delete_removes_and_missing_keys_are_fine(storage: SqlStorage) -> None:
    await storage.write({"a": Note("a"), "b": Note("b")})
    await storage.delete(["a"])
    assert set(await storage.read(["a", "b"], target_cls=Note)) == {"b"}
    await storage.delete(["a"])  # already gone
    await storage.delete(["never-existed", "b"])
    assert await storage.read(["a", "b"], target_cls=Note) == {}


async def test_a_deleted_key_can_be_created_again(storage: SqlStorage) -> None:
    await storage.write({"k": Note("old")})
    await storage.delete(["k"])
    fresh = Note("new")
    fresh.e_tag = CREATE_ONLY
    await storage.write({"k": fresh})
    assert (await read_one(storage, "k", Note)).text == "new"


# ---- batches ------------------------------------------------------------------------------------


async def test_batch_read_write_delete(storage: SqlStorage) -> None:
    keys = [f"batch/{i}" for i in range(5)]
    await storage.write({key: Note(key, i) for i, key in enumerate(keys)})

    items = await storage.read(keys + ["batch/missing"], target_cls=Note)
    assert set(items) == set(keys)
    assert {key: (item.text, item.count) for key, item in items.items()} == {k: (k, i) for i, k in enumerate(keys)}
    assert all(item.e_tag for item in items.values())

    for item in items.values():
        item.count += 100
    await storage.write(dict(items))
    assert {k: n.count for k, n in (await storage.read(keys, target_cls=Note)).items()} == {
        k: i + 100 for i, k in enumerate(keys)
    }

    await storage.delete(keys[:3])
    assert set(await storage.read(keys, target_cls=Note)) == set(keys[3:])


async def test_a_batch_with_one_conflict_writes_nothing(storage: SqlStorage) -> None:
    await storage.write({"x": Note("x0"), "y": Note("y0"), "z": Note("z0")})
    items = await storage.read(["x", "y", "z"], target_cls=Note)
    stale_etag = items["y"].e_tag
    bump = await read_one(storage, "y", Note)
    bump.text = "y changed elsewhere"
    await storage.write({"y": bump})

    items["y"].e_tag = stale_etag
    batch = {
        "x": items["x"],
        "y": items["y"],
        "z": items["z"],
        "w": Note("w-new"),  # a brand-new key in the same batch must not be created either
    }
    for key, item in batch.items():
        item.text = f"{key} from the batch"
    x_etag_before = items["x"].e_tag
    with pytest.raises(StateConflictError):
        await storage.write(batch)

    after = await storage.read(["x", "y", "z", "w"], target_cls=Note)
    assert set(after) == {"x", "y", "z"}
    assert {k: n.text for k, n in after.items()} == {"x": "x0", "y": "y changed elsewhere", "z": "z0"}
    assert after["x"].e_tag == x_etag_before  # untouched versions


async def test_a_batch_with_a_create_only_duplicate_writes_nothing(storage: SqlStorage) -> None:
    await storage.write({"exists": Note("kept")})
    duplicate = Note("dup")
    duplicate.e_tag = CREATE_ONLY
    with pytest.raises(StateConflictError):
        await storage.write({"other": Note("other"), "exists": duplicate})
    after = await storage.read(["exists", "other"], target_cls=Note)
    assert set(after) == {"exists"}
    assert after["exists"].text == "kept"


# ---- keys ---------------------------------------------------------------------------------------

ODD_KEYS = [
    pytest.param("msteams/conversations/a:1;messageid=1700000000000", id="teams-thread"),
    pytest.param("ünïcødé/会话/🙂", id="unicode"),
    pytest.param('it\'s "quoted"', id="quotes"),
    pytest.param("a/b\\c//d", id="slashes"),
    pytest.param(PUNCTUATION_KEY, id="punctuation"),
    pytest.param("%_ like wildcards _%", id="like-wildcards"),
    pytest.param("  spaces around  ", id="spaces"),
    pytest.param("x" * 1000, id="1000-chars"),
    pytest.param("é" * 600, id="600-multibyte"),
]


@pytest.mark.parametrize("key", ODD_KEYS)
async def test_odd_keys_round_trip(storage: SqlStorage, key: str) -> None:
    item = Note(f"value of {key[:20]}")
    item.e_tag = CREATE_ONLY
    await storage.write({key: item})

    items = await storage.read([key], target_cls=Note)
    assert list(items) == [key]
    loaded = items[key]
    assert loaded.text == item.text

    loaded.count = 7
    await storage.write({key: loaded})  # conditional update on the same key
    assert (await read_one(storage, key, Note)).count == 7

    await storage.delete([key])
    assert await storage.read([key], target_cls=Note) == {}


async def test_odd_keys_stay_distinct(storage: SqlStorage) -> None:
    long_base = "msteams/conversations/" + "y" * 1000
    keys = [
        long_base + "A",
        long_base + "B",  # differs only in the last character
        "x" * 500,  # the longest key kept as it is
        "x" * 501,
        "Key",
        "key",  # case matters
        "key ",  # a trailing space matters
        PUNCTUATION_KEY,
        PUNCTUATION_KEY[:-1],
    ]
    await storage.write({key: Note(f"#{i}", i) for i, key in enumerate(keys)})

    items = await storage.read(keys, target_cls=Note)
    assert {key: item.count for key, item in items.items()} == {key: i for i, key in enumerate(keys)}

    await storage.delete([long_base + "A"])
    remaining = await storage.read(keys, target_cls=Note)
    assert long_base + "A" not in remaining
    assert remaining[long_base + "B"].count == 1


# ---- arguments and values ----------------------------------------------------------------------


async def test_empty_key_lists_raise_value_error(storage: SqlStorage) -> None:
    with pytest.raises(ValueError):
        await storage.read([], target_cls=Note)
    with pytest.raises(ValueError):
        await storage.write({})
    with pytest.raises(ValueError):
        await storage.delete([])


NESTED = {
    "dict": {"a": {"b": {"c": [1, 2, {"d": None}]}}},
    "list": [[], [1, [2, [3]]], {"x": True}],
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "float": 1.5,
    "negative": -42,
    "empty_string": "",
    "empty_dict": {},
    "unicode": "Grüße, 世界 🙂 \u2028 \"quotes\" 'single' \\ back",
    "ünïcødé-key": "value",
    "big": 2**53 + 1,
}


async def test_nested_values_round_trip(storage: SqlStorage) -> None:
    await storage.write({"values": state(**NESTED)})
    loaded = await read_one(storage, "values")
    assert loaded.state == NESTED
    assert loaded.state["true"] is True and loaded.state["false"] is False
    assert loaded.state["none"] is None


async def test_empty_state_round_trips(storage: SqlStorage) -> None:
    await storage.write({"empty": CachedAgentState()})
    loaded = await read_one(storage, "empty")
    assert loaded.state == {}
    assert loaded.e_tag
