"""Migrations: the only way the schema changes, safe to run from several replicas at once, and in
step with the models."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text

import services.models  # noqa: F401  (tables on the metadata)
from services.db import Base, create_engine, create_session_factory, include_name
from services.migrate import MIGRATIONS_DIR, alembic_config, at_head, database_revisions, script_heads, upgrade_database
from services.models import ConversationReferenceRow, Organisation


async def test_replicas_starting_together_migrate_once(empty_database_url):
    engines = [create_engine(empty_database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade_database(engine) for engine in engines))
        await upgrade_database(engines[0])  # and again: a no-op
        async with engines[0].connect() as connection:
            versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        assert len(versions) == 1
    finally:
        for engine in engines:
            await engine.dispose()


def upgrade_to(revision: str):
    def run(connection):
        command.upgrade(alembic_config(connection), revision)
        connection.commit()

    return run


def alembic_heads(folder: Path) -> frozenset[str]:
    return frozenset(ScriptDirectory(str(folder)).get_heads())


def test_the_heads_read_from_the_migration_files_are_alembics():
    assert script_heads() == alembic_heads(MIGRATIONS_DIR)


def _write_revisions(folder: Path, revisions: dict[str, str]) -> Path:
    versions = folder / "versions"
    versions.mkdir(parents=True)
    for name, header in revisions.items():
        (versions / f"{name}.py").write_text(f'"""{name}"""\n\n{header}\n\n\ndef upgrade():\n    pass\n')
    return versions


def _revision(revision: str, down: str) -> str:
    return f'revision: str = "{revision}"\ndown_revision: str | tuple[str, ...] | None = {down}\n'


@pytest.mark.parametrize(
    "revisions",
    [
        {"a": _revision("r1", "None"), "b": _revision("r2", '"r1"'), "c": _revision("r3", '"r2"')},
        # files named out of order: the head is the revision nobody builds on, not the last file
        {"1": _revision("r1", "None"), "2": _revision("r3", '"r4"'), "3": _revision("r4", '"r1"')},
        # two branches: both are heads (Alembic then refuses "head"; the reader must not call either the head)
        {"a": _revision("r1", "None"), "b": _revision("r2", '"r1"'), "c": _revision("r3", '"r1"')},
        # the branches merged
        {
            "a": _revision("r1", "None"),
            "b": _revision("r2", '"r1"'),
            "c": _revision("r3", '"r1"'),
            "d": _revision("r4", '("r2", "r3")'),
        },
    ],
    ids=["linear", "out-of-order", "branched", "merged"],
)
def test_the_head_reader_agrees_with_alembic(tmp_path, revisions):
    _write_revisions(tmp_path, revisions)
    assert script_heads(tmp_path / "versions") == alembic_heads(tmp_path)


@pytest.mark.parametrize(
    "header",
    [
        "revision = REVISION\ndown_revision = None",  # not a literal
        'down_revision = "r1"',  # no revision
        _revision("r2", '"r1"') + 'branch_labels = ("feature",)',
        _revision("r2", '"r1"') + 'depends_on = "r0"',
        _revision("r2", '"missing"'),  # builds on a revision that is not there
        _revision("r1", "None"),  # the same revision twice
    ],
    ids=["computed", "no-revision", "branch-label", "depends-on", "missing-parent", "duplicate"],
)
def test_migration_files_the_reader_does_not_understand_are_left_to_alembic(tmp_path, header):
    versions = _write_revisions(tmp_path, {"a": _revision("r1", "None"), "b": header})
    assert script_heads(versions) is None


async def test_a_database_behind_the_head_is_migrated(empty_database_url):
    engine = create_engine(empty_database_url)
    try:
        assert await database_revisions(engine) is None  # no alembic_version table yet
        assert not await at_head(engine)
        async with engine.connect() as connection:
            await connection.run_sync(upgrade_to("0009"))
        assert not await at_head(engine)
        await upgrade_database(engine)
        assert await database_revisions(engine) == script_heads()
        assert await at_head(engine)
        async with engine.connect() as connection:  # revision 0010's table is there
            assert (await connection.execute(text("SELECT count(*) FROM sent_cards"))).scalar() == 0
    finally:
        await engine.dispose()


async def test_a_database_at_the_head_is_not_handed_to_alembic(empty_database_url, monkeypatch):
    engine = create_engine(empty_database_url)
    try:
        await upgrade_database(engine)

        def no_alembic(_connection):
            raise AssertionError("Alembic was run on a database at the head")

        monkeypatch.setattr("services.migrate._upgrade", no_alembic)
        await upgrade_database(engine)
    finally:
        await engine.dispose()


async def test_a_database_ahead_of_these_migrations_is_not_taken_for_at_head(empty_database_url):
    """A newer release migrated it: Alembic refuses, as it did before the quick check existed."""
    engine = create_engine(empty_database_url)
    try:
        await upgrade_database(engine)
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        assert not await at_head(engine)
        with pytest.raises(CommandError, match="9999"):
            await upgrade_database(engine)
    finally:
        await engine.dispose()


async def test_migrations_match_the_models(empty_database_url):
    engine = create_engine(empty_database_url)
    try:
        await upgrade_database(engine)

        def _diff(connection):
            context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": include_name})
            return compare_metadata(context, Base.metadata)

        async with engine.connect() as connection:
            differences = await connection.run_sync(_diff)
        assert differences == [], f"models and migrations differ; write a migration: {differences}"
    finally:
        await engine.dispose()


async def test_sqlite_runs_with_wal_and_a_busy_timeout(empty_sqlite_url):
    engine = create_engine(empty_sqlite_url)
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() >= 5000
            assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_the_conversations_strangers_left_are_forgotten(empty_database_url):
    """Revision 0009: references stored for callers who were no member (no organisation) are removed;
    a member's are kept."""
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(upgrade_to("0008"))
        async with create_session_factory(engine).begin() as session:
            org = Organisation(slug="fabrikam", name="Fabrikam")
            session.add(org)
            await session.flush()
            for conversation_id, organisation_id in (("a:member", org.id), ("a:stranger", None)):
                session.add(
                    ConversationReferenceRow(
                        conversation_id=conversation_id, organisation_id=organisation_id, reference={"x": 1}
                    )
                )
        async with engine.connect() as connection:
            await connection.run_sync(upgrade_to("head"))
            kept = (await connection.execute(text("SELECT conversation_id FROM conversation_references"))).scalars()
            assert list(kept) == ["a:member"]
    finally:
        await engine.dispose()
