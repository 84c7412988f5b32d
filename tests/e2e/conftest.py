"""One Agents Playground per test module (it takes seconds to start); each test puts its own bot
behind it with `bot_in_playground`. The module's tests and their async fixtures run on the module's
event loop, the one the Playground's connections belong to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.e2e.playground import SharedPlayground, shared_playground


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_playground() -> AsyncIterator[SharedPlayground]:
    async with shared_playground() as shared:
        yield shared
