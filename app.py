"""The app factory, and `python app.py`: the bot on the embedded default.

`create_app(settings)` builds everything in `cleanup_ctx` — database (migrated), services, the
Agents SDK adapter, the bot, the job runner — and hands it down through constructors under typed
`web.AppKey`s. No module-level mutable state.
"""

from __future__ import annotations

import gc

if __name__ == "__main__":
    # `python app.py`: while the modules below load, the collector would run some 300 times over a heap that
    # never becomes garbage (a tenth of the start-up). It runs once, and is turned on again with that heap
    # frozen, when the app has started (`_serve`).
    gc.disable()

import argparse
import functools
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core.authorization import Connections
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.auth import AuthenticationFailed, RequestAuthenticator, SigningKeySource, build_connections
from bot.connector_clients import KeepAliveClientFactory
from bot.exports import export_handler
from bot.file_uploads import OneDriveUploads
from bot.handler import CspBot, InvokeHandler
from bot.inputs import MAX_NESTING, nested_too_deeply, unsafe_ids
from bot.invokes import default_invoke_handlers
from bot.job_notices import FollowUp, JobNotifier
from bot.live_cards import LiveCards
from bot.metrics_http import metrics_handler
from bot.overload import RETRY_AFTER_SECONDS, LoopLag, LoopLagMonitor, TurnAdmission
from bot.proactive import ProactiveMessenger
from bot.storage import SqlStorage
from bot.turn_errors import on_turn_error
from dialogs.approval_delivery import ApprovalDelivery
from dialogs.catalogue import Task, TaskCatalogue
from dialogs.tasks import default_tasks, job_follow_ups, job_renderers
from services.access import Caller
from services.clock import Clock
from services.container import Services, build_services
from services.db import create_engine
from services.jobs import JobView
from services.logging_context import configure_logging
from services.metrics import Metrics, read_snapshot, turn_kind
from services.migrate import upgrade_database
from services.outbound_hosts import HostNotAllowed
from services.partner_center import PartnerCenterClient
from services.roles import Permission
from services.sealed_secrets import SecretsKeyError
from services.seed import seed_demo_organisation
from services.settings import Settings, SettingsError, describe_invalid_settings
from startup.catalog import prepare_catalog
from startup.partner_center import PartnerCenterOpener, open_bot_partner_center

log = logging.getLogger("cspbot")
MAX_WORKERS = 64

TaskFactory = Callable[[Services], Sequence[Task]]
InvokeFactory = Callable[[Services, ProactiveMessenger], dict[str, InvokeHandler]]


@dataclass(frozen=True)
class BotRuntime:
    """What the running app holds: services, the SDK adapter, the bot and its helpers."""

    services: Services
    adapter: CloudAdapter
    bot: CspBot
    authenticator: RequestAuthenticator
    messenger: ProactiveMessenger
    loop_lag: LoopLag


SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", BotRuntime)
ADMISSION = web.AppKey("admission", TurnAdmission)
METRICS = web.AppKey("metrics", Metrics)
TURN_KIND = web.RequestKey("turn_kind", str)


@functools.cache
def version() -> str:
    from importlib import metadata  # read once, when /healthz first asks: it scans every installed package

    try:
        return metadata.version("csp-teams-bot")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def bot_tasks(services: Services) -> Sequence[Task]:
    """The bot's tasks, with the OneDrive upload of billing's exports (the bot's transport)."""
    return default_tasks(services, OneDriveUploads(services.outbound_hosts.file_upload))


def create_app(
    settings: Settings,
    *,
    connections: Connections | None = None,
    signing_keys: SigningKeySource | None = None,
    tasks: TaskFactory = bot_tasks,
    run_jobs: bool = True,
    partner_center: PartnerCenterOpener = open_bot_partner_center,
    invokes: InvokeFactory = default_invoke_handlers,
    connector_tls: ssl.SSLContext | None = None,
    loop_lag: LoopLag | None = None,
) -> web.Application:
    """The aiohttp application. `connections` and `signing_keys` replace the outbound token
    provider and the inbound key look-up (tests; no network); `tasks` builds the task list;
    `partner_center` opens the Partner Center client (Microsoft's API or the built-in sandbox);
    `invokes` builds the `adaptiveCard/action` verb handlers; `connector_tls` is the TLS context of
    connections to the Bot Connector (default: the system's trusted CAs; tests trust their own);
    `loop_lag` says when the event loop lags (default: a `LoopLagMonitor` running with the app)."""
    settings.check_safe_to_serve()
    app = web.Application()
    app[SETTINGS] = settings
    app[ADMISSION] = TurnAdmission(settings.max_concurrent_turns, settings.max_working_turns)
    app[METRICS] = metrics = Metrics(version())

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        try:
            await upgrade_database(engine)
            async with partner_center(settings) as opened:
                async for _ in _serve(app, engine, opened.client, opened.clock):
                    yield
        finally:
            await engine.dispose()

    async def _serve(
        app: web.Application, engine: AsyncEngine, client: PartnerCenterClient, clock: Clock
    ) -> AsyncIterator[None]:
        """Build the services and the bot on an open database and Partner Center client; run until shutdown."""
        client.on_call = metrics.partner_center_call
        services = build_services(engine, settings, client, clock)
        if settings.seeds_demo_organisation:
            await seed_demo_organisation(services.organisations)
        catalog_refresh = await prepare_catalog(
            services, seed_demo_prices=settings.seeds_demo_organisation and settings.uses_partner_center_sandbox
        )
        lag_monitor = LoopLagMonitor(settings.typing_indicator_max_loop_lag_seconds)
        lag = loop_lag or lag_monitor
        connection_manager = connections or build_connections(settings)
        connector_clients = KeepAliveClientFactory(
            connection_manager, services.outbound_hosts.connector, tls=connector_tls
        )
        adapter = CloudAdapter(connection_manager=connection_manager, channel_service_client_factory=connector_clients)
        adapter.on_turn_error = on_turn_error
        messenger = ProactiveMessenger(
            adapter,
            services.conversations,
            app_id=settings.microsoft_app_id,
            connector_hosts=services.outbound_hosts.connector,
        )
        catalogue = TaskCatalogue(tasks(services))
        bot = CspBot(
            storage=SqlStorage(services.sessions),
            access=services.access,
            conversations=services.conversations,
            receipts=services.activity_receipts,
            tasks=catalogue,
            messenger=messenger,
            invoke_handlers=invokes(services, messenger),
            typing_delay=settings.typing_indicator_delay_seconds,
            live_cards=LiveCards(services.sent_cards, catalogue.describe),
            on_arrival=_delivers_waiting_approvals(services, messenger),
            loop_lag=lag,
        )
        services.jobs.set_notifier(
            JobNotifier(
                messenger,
                job_renderers(),
                conversation_lock=bot.conversation_lock,
                follow_ups={kind: _starts_task(services, bot, command) for kind, command in job_follow_ups().items()},
            )
        )
        authenticator = RequestAuthenticator(
            connection_manager.get_default_connection_configuration(),
            signing_keys,
            clock_skew_seconds=settings.token_clock_skew_seconds,
        )
        app[RUNTIME] = BotRuntime(services, adapter, bot, authenticator, messenger, lag)
        if run_jobs:
            services.jobs.start()
            services.user_sync.start()
            services.warnings.start()
        if lag is lag_monitor:
            lag_monitor.start()
        # The start-up heap (SDK, SQLAlchemy, pydantic models) never becomes garbage; moving it out
        # of the collector's reach stops full collections from pausing turns for ~100 ms (p99). (`python
        # app.py` started with the collector off; it is on from here.) No collection first: it would take
        # ~60 ms of the start for the ~2,000 cycles the imports leave (~0.5 MB, kept for good instead).
        gc.freeze()
        gc.enable()
        yield
        if catalog_refresh is not None:
            catalog_refresh.cancel()
        await services.warnings.stop()
        await services.user_sync.stop()
        await services.jobs.stop()
        await lag_monitor.stop()
        await connector_clients.close()

    app.cleanup_ctx.append(runtime_ctx)
    app.router.add_post("/api/messages", handle_messages)
    app.router.add_get("/healthz", handle_health)
    app.router.add_get(
        "/metrics",
        metrics_handler(
            metrics,
            settings.metrics_token.get_secret_value(),
            turns=lambda: (
                app[ADMISSION].in_flight,
                app[ADMISSION].limit,
                app[ADMISSION].working,
                app[ADMISSION].working_limit,
            ),
            snapshot=lambda: read_snapshot(
                app[RUNTIME].services.jobs, app[RUNTIME].services.mailer, app[RUNTIME].services.alerts
            ),
        ),
    )
    app.router.add_get(
        "/exports/{token}",
        export_handler(lambda: app[RUNTIME].services.billing, lambda: app[RUNTIME].services.warnings.overview),
    )
    return app


def _delivers_waiting_approvals(services: Services, messenger: ProactiveMessenger) -> Callable[..., Awaitable[None]]:
    """When an approver opens a chat with the bot, the requests that could not reach them follow; when
    an admin does, the warnings that are still to act on (docs/renewals.md)."""

    async def deliver(chat_id: str, caller: Caller) -> None:
        if caller.can(Permission.DECIDE_SUSPENSION):
            await ApprovalDelivery(
                services.approvals, services.conversations, messenger, services.access.reader_of_member
            ).deliver_waiting(caller.organisation_id, caller.member_id, chat_id)
        if caller.can(Permission.MANAGE_SERVICES):
            await services.warnings.deliver_waiting(caller.organisation_id, caller.member_id)

    return deliver


def _starts_task(services: Services, bot: CspBot, command: str) -> FollowUp:
    """A job follow-up: start `command` for the member who submitted the job, with their roles now."""

    async def start(conversation_id: str, job: JobView) -> None:
        if job.organisation_id is None:
            return
        caller = await services.access.member_caller(job.organisation_id, job.requested_by)
        if caller is not None:
            await bot.begin_task(conversation_id, command, caller)

    return start


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def handle_messages(request: web.Request) -> web.StreamResponse:
    """Admit the turn, or answer 503 with Retry-After before doing any work (bot/overload.py)."""
    admission = request.app[ADMISSION]
    metrics = request.app[METRICS]
    ticket = admission.try_enter()
    if ticket is None:
        metrics.turn_shed()
        return web.json_response(
            {"error": f"The bot is busy; send the activity again in {RETRY_AFTER_SECONDS} s."},
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    started = time.perf_counter()
    status = 500  # unless an answer comes back
    try:
        response = await _handle_admitted_message(request)
        status = response.status
        return response
    finally:
        admission.leave(ticket)
        metrics.turn_done(request.get(TURN_KIND, "unknown"), status, time.perf_counter() - started)


async def _handle_admitted_message(request: web.Request) -> web.StreamResponse:
    """Authenticate, check the body is an activity from Teams whose serviceUrl is a connector this bot
    sends to, then hand it to the SDK adapter."""
    runtime = request.app[RUNTIME]
    try:
        identity = await runtime.authenticator.authenticate(request.headers.get("Authorization"))
    except AuthenticationFailed as failure:
        return _error(401, str(failure))
    try:
        body = await request.json()
    except RecursionError:  # the JSON parser recurses per level: an absurdly deep body ends here
        return _error(400, f"The body nests lists or objects more than {MAX_NESTING} levels deep.")
    except ValueError:
        return _error(400, "The body must be a JSON activity.")
    if not isinstance(body, dict):
        return _error(400, "The body must be a JSON object (an activity).")
    if nested_too_deeply(body):
        return _error(400, f"The body nests lists or objects more than {MAX_NESTING} levels deep.")
    try:
        activity = Activity.model_validate(body)
    except ValidationError:
        return _error(400, "The body is not a valid activity.")
    request[TURN_KIND] = turn_kind(activity.type)
    if not activity.type or activity.conversation is None or not activity.conversation.id:
        return _error(400, "An activity needs a type and a conversation id.")
    if unsafe_ids(activity):
        return _error(400, "An id in the activity holds control characters.")
    try:
        runtime.authenticator.check_service_url(identity, activity.service_url)
    except AuthenticationFailed as failure:
        return _error(401, str(failure))
    try:
        runtime.services.outbound_hosts.connector.check(activity.service_url)
    except HostNotAllowed:
        return _error(400, "The activity's serviceUrl is not a Bot Connector host this bot sends to.")
    request["claims_identity"] = identity
    response = await runtime.adapter.process(request, runtime.bot)
    return response if response is not None else web.Response(status=202)


async def handle_health(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    settings = request.app[SETTINGS]
    database = "ok"
    open_alerts: int | None = None
    try:
        async with runtime.services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        open_alerts = await runtime.services.alerts.open_count()
    except Exception:
        log.exception("health check: database unreachable")
        database = "unreachable"
    healthy = database == "ok"
    return web.json_response(
        {
            "status": "ok" if healthy and not open_alerts else ("degraded" if healthy else "down"),
            "version": version(),
            "database": database,
            "open_alerts": open_alerts,
            "authentication": "bot-framework" if settings.authenticated else "none (local only)",
            "partner_center": "sandbox" if settings.uses_partner_center_sandbox else "microsoft",
        },
        status=200 if healthy else 503,
    )


def _options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="app.py", description="Serve the bot with the settings from the environment (README.md)."
    )
    parser.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        metavar="N",
        help="serve from N processes sharing the port, about one per core (default 1; bot/workers.py)",
    )
    return parser.parse_args(argv)


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"give a whole number from 1 to {MAX_WORKERS}, not {text!r}")
    return count


def main(argv: Sequence[str] | None = None) -> None:
    options = _options(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        configure_logging("INFO", "auto")
        log.error("invalid configuration: %s", describe_invalid_settings(error))
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except SettingsError as error:
        log.error("%s", error)
        raise SystemExit(2) from None
    if not settings.authenticated:
        log.warning(
            "*** UNAUTHENTICATED LOCAL MODE *** MICROSOFT_APP_ID is empty: /api/messages accepts any request "
            "and callers are trusted by their channel id. Listening on %s only. Never expose this.",
            settings.host,
        )
    if options.workers > 1:
        _serve_workers(settings, options.workers)
        return
    try:
        web.run_app(app, host=settings.host, port=settings.port, print=None)
    except SecretsKeyError as error:  # the key file is unreadable or holds no key (found at start-up)
        log.error("%s", error)
        raise SystemExit(2) from None


def _serve_workers(settings: Settings, count: int) -> None:
    """`--workers N`: N processes, each serving its own app on the shared port (bot/workers.py)."""
    from bot.workers import serve_workers

    def make_app() -> web.Application:
        return create_app(settings)

    try:
        code = serve_workers(make_app, settings.host, settings.port, count, on_error=_start_up_error)
    except OSError as error:  # the port: taken by another program, or not ours to bind
        log.error("cannot listen on %s:%s: %s", settings.host, settings.port, error.strerror or error)
        raise SystemExit(2) from None
    if code:
        raise SystemExit(code)


def _start_up_error(error: BaseException) -> int | None:
    """A worker's start-up failure that is said in one line, with its exit code (as a single process says it)."""
    if isinstance(error, SecretsKeyError):
        log.error("%s", error)
        return 2
    return None


if __name__ == "__main__":
    main()
