"""One Agents Playground and one headless Chromium per test process (each takes seconds to start):
each test puts its own bot behind the Playground with `bot_in_playground` and opens its own page
(a browser context of its own) with `chromium.page`. The end-to-end tests and their async fixtures
run on the session's event loop, the one the Playground's and Chromium's connections belong to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.databases import copy_sqlite_template
from tests.e2e.browser import Chromium
from tests.e2e.playground import E2E_DATABASE, SharedPlayground, shared_playground

MEGAN_CONFIG = Path(__file__).with_name("playground-megan.yml")


@pytest.fixture(autouse=True)
def _migrated_bot_database(tmp_path: Path, sqlite_template: Path) -> None:
    """The database `bot_in_playground` opens is a copy of the migrated template: the bot's start-up
    finds the schema at the head (it still seeds, syncs the catalog and prices as always)."""
    copy_sqlite_template(sqlite_template, tmp_path / E2E_DATABASE)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def session_playground() -> AsyncIterator[SharedPlayground]:
    """The Playground with its built-in configuration (Alex Wilber is its current user)."""
    async with shared_playground() as shared:
        yield shared


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def megans_playground() -> AsyncIterator[SharedPlayground]:
    """A second Playground whose current user is Megan Bowen, the demo organisation's approver; a test
    points its front at its own bot too (see `bot_in_playground`)."""
    async with shared_playground(MEGAN_CONFIG) as shared:
        yield shared


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Chromium]:
    browser = Chromium()
    await browser.start()
    try:
        yield browser
    finally:
        await browser.close()
