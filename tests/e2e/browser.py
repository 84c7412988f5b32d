"""The rendered Agents Playground in headless Chromium, for tests that click what a person clicks.

`Chromium` runs `browser_driver.mjs` (npm playwright-core driving Debian's chromium) and talks to it
in JSON lines; it takes seconds to start, so one serves a whole test session (the `chromium`
fixture). Each `Browser` is a page of it in a browser context of its own (own cookies and storage,
as a freshly started browser), closed when the test ends. Every call fails the test on a page error
or a console error from the card renderer (a button that throws sends nothing, and a person sees
nothing), and `click`/`send` wait for the bot's answer within a bound. A failing test leaves a
screenshot of the page under `test-artifacts/browser/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
from pathlib import Path
from types import TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("browser_driver.mjs")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
BOT_AUTHOR = "Test Bot"
# How often a wait looks at the page again (each look is one cheap call into the page).
POLL_SECONDS = 0.05


class BrowserError(AssertionError):
    """The page did something a person would see as broken, or the driver failed."""


class Chromium:
    """One headless Chromium behind `browser_driver.mjs`, for many pages in a row (or at once).

    Calls go one at a time; an answer that comes after its caller gave up is skipped by its id. If the
    driver stopped, the next `page()` starts a new one."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Start the driver and its Chromium (otherwise the first page does)."""
        async with self._lock:
            await self._start()

    async def _start(self) -> None:
        if shutil.which("node") is None:
            raise RuntimeError("node is not on PATH")
        if shutil.which(CHROMIUM) is None:
            raise RuntimeError(f"Chromium not found at {CHROMIUM}: .ci/run installs Debian's chromium")
        self._proc = await asyncio.create_subprocess_exec(
            "node",
            str(DRIVER),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=32 * 1024 * 1024,
        )
        try:
            answer = await self._exchange("launch", 60, None, {})
        except BaseException:
            await self._stop()
            raise
        if not answer["ok"]:
            await self._stop()
            raise BrowserError(f"Chromium did not start: {answer['error']}")

    def page(self, url: str, name: str, *, reply_timeout: float = 15.0) -> Browser:
        """A new page showing `url`: ``async with chromium.page(url, name) as browser:``."""
        return Browser(self, url, name, reply_timeout=reply_timeout)

    async def call(self, op: str, timeout: float = 30, page: int | None = None, **args: Any) -> dict[str, Any]:  # noqa: ASYNC109
        """Send one request (about `page`) and return the driver's answer: ``ok``, ``result`` or
        ``error``, and the page's ``problems``."""
        async with self._lock:
            if self._proc is None or self._proc.returncode is not None:
                await self._stop()
                await self._start()
            return await self._exchange(op, timeout, page, args)

    async def _exchange(self, op: str, within: float, page: int | None, args: dict[str, Any]) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        request_id = next(self._ids)
        proc.stdin.write((json.dumps({"id": request_id, "op": op, "page": page, **args}) + "\n").encode())
        await proc.stdin.drain()
        try:
            async with asyncio.timeout(within):
                while True:
                    line = await proc.stdout.readline()
                    if not line:
                        stderr = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
                        await self._stop()
                        raise BrowserError(f"the browser driver stopped during {op}: {stderr[-2000:]}")
                    answer = json.loads(line)
                    if answer.get("id") == request_id:  # not the late answer to a call that gave up
                        return dict(answer)
        except TimeoutError:
            raise BrowserError(f"the browser did not finish {op} within {within} s") from None

    async def close(self) -> None:
        """Close Chromium and stop the driver (its whole process group)."""
        async with self._lock:
            if self._proc is not None and self._proc.returncode is None:
                # Closed by Chromium itself, which then removes its temporary profile.
                with contextlib.suppress(Exception):
                    await self._exchange("close", 10, None, {})
            await self._stop()

    async def _stop(self) -> None:
        proc = self._proc
        self._proc = None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Chromium it started
        async with asyncio.timeout(10):
            await proc.wait()


class Browser:
    """One page of a `Chromium` on the Playground. Use as ``async with chromium.page(url, name) as page:``."""

    def __init__(self, chromium: Chromium, url: str, name: str, *, reply_timeout: float = 15.0) -> None:
        self.chromium = chromium
        self.url = url
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        self.reply_timeout = reply_timeout
        self.steps = 0
        self._page: int | None = None
        self._failed = False

    async def __aenter__(self) -> Browser:
        self._page = int(await self._call("open", url=self.url, timeout=60))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._page is None:
            return
        try:
            if exc is not None or self._failed:
                await self.screenshot("failure")
        finally:
            with contextlib.suppress(BrowserError):
                await self._call("closePage", timeout=10)
            self._page = None

    async def _call(self, op: str, timeout: float = 30, **args: Any) -> Any:  # noqa: ASYNC109
        try:
            answer = await self.chromium.call(op, timeout, self._page, **args)
        except BrowserError:
            self._failed = True
            raise
        if answer.get("problems"):
            self._failed = True
            raise BrowserError(f"the page reported errors during {op}: " + "; ".join(answer["problems"]))
        if not answer["ok"]:
            self._failed = True
            raise BrowserError(f"{op} failed: {answer['error']}")
        return answer["result"]

    # ---- what a person does -------------------------------------------------------------------
    async def messages(self) -> list[dict[str, Any]]:
        """Every message of the open chat, oldest first: author, text, and whether it has a card."""
        return list(await self._call("messages"))

    async def send(self, text: str, *, expect: str | None = None) -> list[dict[str, Any]]:
        """Type `text` in the compose box and press Enter; wait for the bot's answer (containing
        `expect` when given). Returns the bot's messages that are new or changed."""
        before = await self.messages()
        await self._call("send", text=text)
        return await self._answer(f"send {text!r}", before, expect)

    async def post_mentioning(self, name: str, text: str, *, expect: str) -> dict[str, Any]:
        """In a channel: post `text` @mentioning `name` (picked from the mention list); wait until
        the post shows `expect` (the bot answers inside the post's thread)."""
        await self._call("sendMentioning", name=name, text=text)
        return await self.wait_for_text(expect)

    async def click(
        self, button: str, *, expect: str | None = None, near: str | None = None, index: int | None = None
    ) -> list[dict[str, Any]]:
        """Click the button named `button` on the newest card that has one (or card `index`; `near`:
        the one beside this text), and wait for the bot's answer: a new message, or the card
        updated in place."""
        before = await self.messages()
        await self._call("click", name=button, index=index, near=near)
        return await self._answer(f"click {button!r}", before, expect)

    async def click_in_place(self, button: str, *, near: str | None = None, index: int | None = None) -> None:
        """Click a button that changes the card itself without asking the bot (show/hide details)."""
        await self._call("click", name=button, index=index, near=near)

    async def tap(self, text: str) -> None:
        """Tap the row of a card that shows `text` and opens or closes part of the card in place."""
        await self._call("tap", text=text)

    async def download(self, link: str, path: Path) -> dict[str, str]:
        """Click the link button `link` (an Action.OpenUrl) on the newest card that has it and save
        the file the browser downloads to `path`; returns its `url` and suggested `name`."""
        return dict(await self._call("download", name=link, path=str(path)))

    async def wait_for_text(self, text: str) -> dict[str, Any]:
        """Until a message of the open chat shows `text` (a proactive message, an updated card)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reply_timeout
        while loop.time() < deadline:
            for message in reversed(await self.messages()):
                if text in message["text"]:
                    return message
            await asyncio.sleep(POLL_SECONDS)
        self._failed = True
        raise BrowserError(f"no message shows {text!r} within {self.reply_timeout} s")

    async def fill(self, label: str, value: str) -> None:
        await self._call("fill", label=label, value=value)

    async def select(self, label: str, option: str) -> None:
        """Choose `option` of the choice set labelled `label`: in a drop-down, as an option button, or
        ticked among tick boxes (several calls tick several)."""
        await self._call("select", label=label, option=option)

    async def untick(self, label: str, option: str) -> None:
        await self._call("untick", label=label, option=option)

    async def choices(self, label: str) -> list[dict[str, Any]]:
        """The options of the expanded choice set labelled `label`: title and whether it is ticked."""
        return list(await self._call("choices", label=label))

    async def check(self, label: str, checked: bool = True) -> None:
        await self._call("check", label=label, checked=checked)

    async def card_text(self, index: int = -1) -> str:
        return str(await self._call("cardText", index=index))

    async def clipped(self, index: int = -1) -> list[str]:
        """The texts of a card (the newest by default) that the renderer cut off."""
        return list(await self._call("clipped", index=index))

    async def buttons(self, index: int = -1) -> list[str]:
        return list(await self._call("buttons", index=index))

    async def inputs(self, index: int = -1) -> list[dict[str, Any]]:
        return list(await self._call("inputs", index=index))

    async def extension_search(self, term: str, *, expect: str) -> str:
        """Search with the bot's message extension from the compose box; wait until its panel shows
        `expect` (a result's title, or the bot's message) and return what the panel shows."""
        await self._call("extensionSearch", term=term)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reply_timeout
        shown = ""
        while loop.time() < deadline:
            shown = str(await self._call("extensionPanel"))
            if expect in shown:
                return shown
            await asyncio.sleep(POLL_SECONDS)
        self._failed = True
        raise BrowserError(f"the message extension did not show {expect!r} within {self.reply_timeout} s: {shown!r}")

    async def extension_share(self, title: str) -> None:
        """Insert the extension's result titled `title` into the compose box and send it."""
        await self._call("extensionShare", title=title)

    async def open_chat(self, name: str) -> None:
        await self._call("openChat", name=name)

    async def screenshot(self, step: str) -> Path:
        self.steps += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{self.steps:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', step)}.png"
        with contextlib.suppress(BrowserError):
            await self._call("screenshot", path=str(path))
        return path

    async def _answer(self, what: str, before: list[dict[str, Any]], expect: str | None) -> list[dict[str, Any]]:
        """Poll the chat until a bot message is new or has changed (and one such contains `expect`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reply_timeout
        earlier = [m["text"] for m in before]
        answered: list[dict[str, Any]] = []
        while loop.time() < deadline:
            current = await self.messages()
            answered = [
                m
                for position, m in enumerate(current)
                if m["author"] == BOT_AUTHOR and (position >= len(earlier) or earlier[position] != m["text"])
            ]
            if answered and (expect is None or any(expect in m["text"] for m in answered)):
                return answered
            await asyncio.sleep(POLL_SECONDS)
        self._failed = True
        got = " | ".join(m["text"][:200] for m in answered) or "nothing"
        wanted = f" containing {expect!r}" if expect else ""
        raise BrowserError(f"{what}: no bot answer{wanted} within {self.reply_timeout} s (got: {got})")
