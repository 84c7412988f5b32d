"""Drive the Microsoft 365 Agents Playground from tests over its HTTP and WebSocket API.

The Playground (npm ``@microsoft/m365agentsplayground``) is a local stand-in for Teams: it sends real
Bot Framework activities to the bot and receives the bot's replies on its mocked connector. We start
it as a subprocess, read its config, and collect the bot's replies from its WebSocket, so end-to-end
tests can run the real bot over HTTP without Teams or a browser. It takes seconds to start, so one
Playground serves a whole test session (`shared_playground`, the `session_playground` fixture) and
each test puts its own bot behind it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from app import RUNTIME, create_app
from services.container import Services
from services.settings import Settings
from tests.fakes import free_port

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAYGROUND_BIN = REPO_ROOT / "node_modules" / ".bin" / "agentsplayground"

# The bot's SQLite file in the test's folder (`bot_in_playground`).
E2E_DATABASE = "e2e.sqlite3"
_LISTENING = re.compile(r"Listening on (\d+)")
_INVOKE_NEEDS_REPLY_TO = "adaptiveCard/action"


class PlaygroundError(RuntimeError):
    """The Playground did not start, or one of its API calls failed."""


class Playground:
    """The Agents Playground as an async context manager.

    ``async with Playground(bot_endpoint) as pg:`` starts it (own process group, no browser, no
    telemetry, channel ``msteams``), waits until it answers, loads ``config`` and connects the
    WebSocket; leaving the block stops the whole process group.
    """

    def __init__(
        self,
        bot_endpoint: str,
        *,
        start_timeout: float = 60.0,
        conversation_id: str | None = None,
        config_path: str | os.PathLike[str] | None = None,
    ) -> None:
        """``conversation_id`` pins the personal chat id (otherwise a new uuid per start);
        ``config_path`` is an optional ``.m365agentsplayground.yml``."""
        self.bot_endpoint = bot_endpoint
        self.start_timeout = start_timeout
        self.conversation_id = conversation_id
        self.config_path = Path(config_path).resolve() if config_path is not None else None
        self.port: int | None = None
        self.config: dict[str, Any] = {}
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.startup_seconds: float | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=40)
        self._output_task: asyncio.Task[None] | None = None
        self._listening: asyncio.Future[int] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_task: asyncio.Task[None] | None = None
        self._ws_closed = asyncio.Event()
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Playground:
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _start(self) -> None:
        if not PLAYGROUND_BIN.exists():
            raise RuntimeError(f"Agents Playground not found at {PLAYGROUND_BIN}; run `npm ci` in {REPO_ROOT}")
        if shutil.which("node") is None:
            raise RuntimeError("`node` is not on PATH; the Agents Playground needs Node.js")
        started = time.monotonic()
        # Own cwd and log file: the Playground reads .m365agentsplayground.yml from its cwd and appends
        # to ./devTools/m365agentsplayground.log, which must not land in the repository.
        self._workdir = tempfile.TemporaryDirectory(prefix="playground-")
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"M365_AGENTS_PLAYGROUND_CONFIG_PATH", "TEAMS_APP_TEST_TOOL_CONFIG_PATH"}
        }
        env.update(
            TEAMSAPPTESTER_BROWSER="none",
            BOT_ENDPOINT=self.bot_endpoint,
            M365_AGENTS_PLAYGROUND_LOGFILE=str(Path(self._workdir.name) / "playground.log"),
        )
        if self.config_path is not None:
            env["M365_AGENTS_PLAYGROUND_CONFIG_PATH"] = str(self.config_path)
        args = [str(PLAYGROUND_BIN), "start", "--disable-telemetry", "-c", "msteams", "-p", str(free_port())]
        if self.conversation_id is not None:
            args += ["--conversation-id", self.conversation_id]
        log.info("starting Agents Playground for %s", self.bot_endpoint)
        self._proc = await asyncio.create_subprocess_exec(
            *args,
            cwd=self._workdir.name,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # own process group, so teardown can kill everything it spawned
        )
        self._listening = asyncio.get_running_loop().create_future()
        self._output_task = asyncio.create_task(self._pump_output())
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            async with asyncio.timeout(self.start_timeout):
                # The requested port may be taken by then; the Playground then picks another and says so.
                self.port = await self._listening
                await self._wait_until_answering()
                # /_internal/v1/config first waits (up to 15 s) for the bot endpoint to answer at all.
                self.config = (await self._request("GET", "/_internal/v1/config"))["config"]
                self._ws = await self._session.ws_connect(f"{self.base_url}/_ws_conversation/v1/conversations/stream")
        except TimeoutError:
            raise PlaygroundError(
                f"Agents Playground did not start within {self.start_timeout:.0f} s; last output:\n{self.output}"
            ) from None
        self._ws_task = asyncio.create_task(self._read_ws())
        self.startup_seconds = time.monotonic() - started
        log.info("Agents Playground ready on port %s after %.1f s", self.port, self.startup_seconds)

    async def _wait_until_answering(self) -> None:
        """Poll the cheap ``/_debug/ping`` until the HTTP routes are mounted."""
        assert self._session is not None
        while True:
            self._raise_if_exited()
            try:
                async with self._session.get(f"{self.base_url}/_debug/ping") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)

    def _raise_if_exited(self) -> None:
        if self._proc is not None and self._proc.returncode is not None:
            raise PlaygroundError(
                f"Agents Playground exited with code {self._proc.returncode}; last output:\n{self.output}"
            )

    async def _pump_output(self) -> None:
        """Keep draining its stdout (a full pipe would block it), remember the tail, find the port."""
        assert self._proc is not None and self._proc.stdout is not None
        pending = b""
        while chunk := await self._proc.stdout.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip()
                self._output.append(line[:2000])
                log.debug("playground: %s", line[:2000])
                match = _LISTENING.search(line)
                if match and self._listening is not None and not self._listening.done():
                    self._listening.set_result(int(match.group(1)))
        await self._proc.wait()
        if self._listening is not None and not self._listening.done():
            self._listening.set_exception(
                PlaygroundError(
                    f"Agents Playground exited with code {self._proc.returncode}; last output:\n{self.output}"
                )
            )

    async def _read_ws(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    frame = msg.json()
                    log.debug("ws frame: %s", frame)
                    self.frames.put_nowait(frame)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    log.warning("Playground WebSocket error: %s", self._ws.exception())
        finally:
            self._ws_closed.set()

    async def aclose(self) -> None:
        """Close the WebSocket and HTTP session, then SIGTERM (later SIGKILL) the process group."""
        if self._ws is not None:
            await self._ws.close()
        if self._ws_task is not None:
            self._ws_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ws_task
        if self._session is not None:
            await self._session.close()
        if self._proc is not None:
            await self._stop_process(self._proc)
        if self._output_task is not None:
            self._output_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._output_task
        if self._workdir is not None:
            self._workdir.cleanup()
        if self._listening is not None and self._listening.done() and not self._listening.cancelled():
            self._listening.exception()  # mark as retrieved: no "exception was never retrieved" noise
        self._ws = None
        self._ws_task = None
        self._session = None
        self._proc = None
        self._output_task = None
        self._workdir = None

    @staticmethod
    async def _stop_process(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # pgid == pid thanks to start_new_session
            try:
                async with asyncio.timeout(grace):
                    await proc.wait()
                # The leader is gone; sweep any child left in the group.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                return
            except TimeoutError:
                log.warning("Agents Playground ignored %s", sig.name)

    # ------------------------------------------------------------------ config

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        """The last lines the Playground printed (for error messages)."""
        return "\n".join(self._output)

    @property
    def bot_id(self) -> str:
        return str(self.config["bot"]["id"])

    @property
    def current_user(self) -> dict[str, Any]:
        """The user the Playground's messages API always sends as (``user-id-0``)."""
        return dict(self.config["currentUser"])

    @property
    def personal_conversation_id(self) -> str:
        """The personal chat between the current user and the bot (a new uuid per start)."""
        return str(self.config["personalChat"]["id"])

    @property
    def group_chat_id(self) -> str:
        return str(self.config["groupChats"][0]["id"])

    # ------------------------------------------------------------------ user actions

    async def _request(self, method: str, path: str, json: dict[str, Any] | None = None) -> Any:
        assert self._session is not None, "use Playground as an async context manager"
        async with self._session.request(method, f"{self.base_url}{path}", json=json) as response:
            body = await response.text()
            if response.status != 200:
                raise PlaygroundError(f"{method} {path} -> {response.status}: {body}")
            return await response.json(content_type=None) if body else None

    async def install(self, conversation_id: str) -> None:
        """What the UI does on opening a chat: the bot gets ``installationUpdate`` + ``conversationUpdate``."""
        await self._request("POST", f"/_debug/conversation/{conversation_id}/installation", {})

    async def send_text(self, conversation_id: str, text: str, *, mention_bot: bool = False) -> None:
        """Send ``text`` as the current user (the Playground ignores any other sender here).

        In group chats and channels the bot only gets messages that @mention it: use ``mention_bot``.
        """
        body: dict[str, Any] = {"from": {"id": self.current_user["id"]}, "text": text, "textFormat": "plain"}
        if mention_bot:
            at = f"<at>{self.config['bot']['name']}</at>"
            body["text"] = f"{at} {text}"
            body["mentions"] = [{"mentioned": {"id": self.bot_id}, "text": at}]
        await self._request("POST", f"/_conversation/v1/conversations/{conversation_id}/messages", body)

    async def submit(
        self, conversation_id: str, reply_to_id: str, value: dict[str, Any], from_id: str | None = None
    ) -> None:
        """Press an ``Action.Submit`` on the card message ``reply_to_id`` (its ``messageId``).

        ``value`` is the action's data merged with the input values; the bot gets a ``message`` with
        ``value`` and ``replyToId``. ``from_id`` must be a member of the conversation.
        """
        body = {
            "conversation": {"id": conversation_id},
            "from": {"id": from_id or self.current_user["id"]},
            "replyToId": reply_to_id,
            "value": value,
        }
        await self._request("POST", "/_conversation/v1/submit", body)

    async def invoke(
        self,
        conversation_id: str,
        value: dict[str, Any],
        *,
        reply_to_id: str | None = None,
        name: str = _INVOKE_NEEDS_REPLY_TO,
        from_id: str | None = None,
    ) -> dict[str, Any]:
        """Send an invoke and return the Playground's response body.

        For ``adaptiveCard/action`` (``Action.Execute``) ``value`` is
        ``{"action": {"type": "Action.Execute", "verb": ..., "data": {...}}}``, ``reply_to_id`` the
        card's ``messageId`` and the result ``{"type": ..., "value": <new card>}``. Other names:
        ``composeExtension/query`` etc. and ``message/submitAction``.
        """
        if name == _INVOKE_NEEDS_REPLY_TO and reply_to_id is None:
            raise ValueError("adaptiveCard/action needs reply_to_id (the card message's messageId)")
        body: dict[str, Any] = {
            "name": name,
            "conversation": {"id": conversation_id},
            "from": {"id": from_id or self.current_user["id"]},
            "value": value,
        }
        if reply_to_id is not None:
            body["replyToId"] = reply_to_id
        return dict(await self._request("POST", "/_conversation/v1/invoke", body) or {})

    # ------------------------------------------------------------------ bot output

    def discard_frames(self) -> None:
        """Forget the frames received so far (between tests sharing this Playground)."""
        while not self.frames.empty():
            self.frames.get_nowait()

    # A default timeout on purpose (hence noqa): a test that forgets one must fail, not hang.
    async def next_frame(self, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The next WebSocket frame: ``createMessage``, ``updateMessage`` or ``typing``."""
        if self.frames.empty() and self._ws_closed.is_set():
            raise PlaygroundError(f"Playground WebSocket is closed; last output:\n{self.output}")
        try:
            async with asyncio.timeout(timeout):
                return await self.frames.get()
        except TimeoutError:
            raise TimeoutError(f"no frame from the Playground within {timeout} s") from None

    async def next_bot_message(self, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The ``message`` of the bot's next answer (``messageId``, ``text``, ``attachments``...): a
        ``createMessage`` frame, or an ``updateMessage`` frame that put the task's next screen in
        place of the card that was clicked (it keeps that card's ``messageId``).

        Typing frames are skipped, and so are updates that turned a used card into a read-only record
        (no button left; use ``next_frame`` to see them). The conversation it went to is added as
        ``actionConversationId``.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no message from the bot within {timeout} s")
            try:
                frame = await self.next_frame(remaining)
            except TimeoutError:
                raise TimeoutError(f"no message from the bot within {timeout} s") from None
            if frame.get("action") == "createMessage" or (
                frame.get("action") == "updateMessage" and _is_live_screen(frame.get("message") or {})
            ):
                return {**frame["message"], "actionConversationId": frame["actionConversationId"]}
            log.debug("skipping %s frame", frame.get("action"))


def _is_live_screen(message: dict[str, Any]) -> bool:
    """A card someone can still click (a next screen), not a used card's read-only record."""

    def clickable(node: Any) -> bool:
        if isinstance(node, dict):
            return str(node.get("type", "")).startswith("Action.") or any(clickable(v) for v in node.values())
        return isinstance(node, list) and any(clickable(item) for item in node)

    return any(clickable(attachment.get("content")) for attachment in message.get("attachments") or [])


class BotFront:
    """The bot endpoint a Playground is started with: a fixed address in front of the current test's
    bot. The Playground is slow to start, so one serves a whole test session, while every test has its
    own bot (its own database, sandbox and outbox) behind this front."""

    def __init__(self) -> None:
        self.target: str | None = None  # base URL of the current test's bot
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.endpoint = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        self.endpoint = f"http://127.0.0.1:{port}/api/messages"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self.target is None or self._session is None:
            return web.json_response({"error": "no bot behind the front right now"}, status=503)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}}
        async with self._session.request(
            request.method, f"{self.target}{request.path_qs}", headers=headers, data=await request.read()
        ) as response:
            body = await response.read()
            kept = {k: v for k, v in response.headers.items() if k.lower() in {"content-type", "location"}}
            return web.Response(status=response.status, body=body, headers=kept)


@dataclass
class SharedPlayground:
    """One Playground and the front it sends to (see `BotFront`)."""

    playground: Playground
    front: BotFront


@contextlib.asynccontextmanager
async def shared_playground(config_path: Path | None = None) -> AsyncIterator[SharedPlayground]:
    """A Playground for several tests in a row; `bot_in_playground` puts each test's bot behind it.
    `config_path`: another Playground configuration (another tenant, another current user)."""
    front = BotFront()
    await front.start()
    try:
        async with Playground(front.endpoint, config_path=config_path) as playground:
            yield SharedPlayground(playground, front)
    finally:
        await front.close()


@contextlib.asynccontextmanager
async def bot_in_playground(
    shared: SharedPlayground, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Playground, Services, Path]]:
    """The bot on the embedded default — its own SQLite file, its built-in sandbox, the demo
    organisation, mail in `tmp_path/outbox`, durable jobs looked for every 50 ms as in the other bot
    tests — served on a free port, behind the shared Playground's front. `overrides`: other settings.
    Yields the Playground, the app's services and the outbox folder."""
    port = free_port()
    outbox = tmp_path / "outbox"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        **{
            "database_url": f"sqlite+aiosqlite:///{tmp_path / E2E_DATABASE}",
            "port": port,
            "mail_outbox_dir": outbox,
            "job_poll_interval_seconds": 0.05,
            **overrides,
        },
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        shared.playground.discard_frames()  # anything the previous test's bot said late
        shared.front.target = f"http://127.0.0.1:{port}"
        try:
            yield shared.playground, app[RUNTIME].services, outbox
        finally:
            shared.front.target = None
    finally:
        await runner.cleanup()
