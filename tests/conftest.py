"""Shared fixtures: real databases (each test its own copy of a migrated SQLite file or PostgreSQL
database, see tests/databases.py), the app on them, and a fake connector at the process edge."""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis.configuration import set_hypothesis_home_dir

from app import RUNTIME, BotRuntime, create_app
from sandbox import RunningSandbox, SandboxClock, SandboxSettings, start_sandbox
from sandbox.runtime import RUNTIME as SANDBOX_RUNTIME
from services.clock import Clock
from services.container import Services, build_services
from services.db import create_engine
from services.organisations import OrganisationView
from services.partner_center import PartnerCenterClient, StaticTokenProvider
from services.partner_center.models import (
    Address,
    Contact,
    Customer,
    CustomerBillingProfile,
    CustomerCompanyProfile,
)
from services.seed import DEMO_SLUG, PLAYGROUND_TENANT_ID, seed_demo_organisation
from services.settings import Settings
from startup.partner_center import PartnerCenter
from tests.balance import in_lanes
from tests.databases import (
    PostgresTestDatabases,
    SqliteCopy,
    assert_self_contained,
    copy_sqlite_template,
    migrate_sqlite_template,
    run_in_own_loop,
)
from tests.fakes import FakeConnector

SANDBOX_TOKEN = "sandbox-test-token"
# The sandbox's frozen "now" in tests: a Monday, mid-month, so cycles and 7-day windows are easy to read.
SANDBOX_START = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)

POSTGRES_ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


T = TypeVar("T")

_HYPOTHESIS_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis caches what it learns in .hypothesis/ under the working directory (from test
    collection on); a temporary folder keeps the checkout clean."""
    config.stash[_HYPOTHESIS_HOME] = tempfile.mkdtemp(prefix="cspbot-hypothesis-")
    set_hypothesis_home_dir(config.stash[_HYPOTHESIS_HOME])


@pytest.hookimpl(trylast=True)  # after pytest's own reordering (by fixture scope)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (worksteal, see pyproject): the slow tests spread over the workers' first
    shares, each share starting with its slowest (tests/balance.py)."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers > 1:
        items[:] = in_lanes(items, workers, str(Path(__file__).parent))


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_HYPOTHESIS_HOME, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def _secrets_key_file_outside_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The key file the app creates when SECRETS_KEY is empty goes to a temporary folder, never into the
    checkout's var/ (a PostgreSQL database has no SQLite file to put it beside)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SECRETS_KEY_FILE", str(tmp_path_factory.mktemp("keys") / "secrets.key"))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, made once per test process; tests get copies of it."""
    path = tmp_path_factory.mktemp("templates") / "migrated.sqlite3"
    run_in_own_loop(migrate_sqlite_template(path))
    return path


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresTestDatabases]:
    """This process's PostgreSQL test databases (a migrated template and its copies); at the end
    none of them may remain."""
    databases = PostgresTestDatabases(POSTGRES_ADMIN_DSN)
    try:
        databases.open()
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN} ({error}); .ci/run starts it")
    yield databases
    remaining = databases.close()
    assert not remaining, f"these test databases were not dropped after their tests (dropped now): {remaining}"


@pytest.fixture
def test_database_file(
    request: pytest.FixtureRequest, tmp_path: Any, sqlite_template: Path, linked_demo: LinkedDemoSnapshots
) -> SqliteCopy:
    """The test's SQLite database, a copy of the migrated template (or, for a test of the linked demo
    customer, of `linked_demo`'s): `sqlite_url`, and `database_url` on SQLite, name this same file."""
    linked = _links_the_demo_customer(request) == "sqlite"
    template = linked_demo.sqlite(_recipe(request)).database if linked else sqlite_template
    return SqliteCopy(Path(template), Path(tmp_path) / "test.sqlite3")


@pytest.fixture
def sqlite_url(test_database_file: SqliteCopy) -> str:
    """The test's SQLite database, migrated."""
    return test_database_file.url


@pytest.fixture
def empty_sqlite_url(tmp_path: Any) -> str:
    """A SQLite database file that does not exist yet (no schema)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"


@pytest.fixture
async def postgres_url(postgres_databases: PostgresTestDatabases) -> AsyncIterator[str]:
    """A PostgreSQL database for one test, migrated; dropped afterwards."""
    name = await postgres_databases.take()
    try:
        yield postgres_databases.url_of(name)
    finally:
        postgres_databases.give_back(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Each test using this runs twice: on SQLite and on PostgreSQL; the database is migrated."""
    if request.param == "sqlite":
        yield request.getfixturevalue("test_database_file").url
        return
    databases: PostgresTestDatabases = request.getfixturevalue("postgres_databases")
    if _links_the_demo_customer(request) == "postgres":
        linked: LinkedDemoSnapshots = request.getfixturevalue("linked_demo")
        name = await databases.take_copy_of(str(linked.postgres(databases, _recipe(request)).database))
    else:
        name = await databases.take()
    try:
        yield databases.url_of(name)
    finally:
        databases.give_back(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    """Like `database_url`, but the database has no schema yet (for the migrations' own tests)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    databases: PostgresTestDatabases = request.getfixturevalue("postgres_databases")
    name = await databases.take_empty()
    try:
        yield databases.url_of(name)
    finally:
        databases.give_back(name)


@dataclass
class Sandbox:
    """The built-in Partner Center sandbox on a free loopback port, its clock frozen (tests move it),
    and the product's real client pointed at it."""

    url: str
    token: str
    clock: SandboxClock
    client: PartnerCenterClient
    session: aiohttp.ClientSession
    running: RunningSandbox

    @property
    def microsoft_clock(self) -> Clock:
        """The sandbox's clock as the app's services get it (`build_services`)."""
        return Clock(self.clock.now)

    def untouched(self) -> bool:
        """Still as it started, as far as what the app reads at start-up goes: the clock has not
        moved and no fault is configured."""
        return self.clock.now() == SANDBOX_START and not self.running.runner.app[SANDBOX_RUNTIME].faults.rules()

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        """Call the sandbox-only admin endpoint (what "elsewhere" or the customer's admin would do)."""
        async with self.session.request(
            method, f"{self.url}/_sandbox{path}", json=body, headers={"Authorization": f"Bearer {self.token}"}
        ) as response:
            data = await response.json() if response.content_type == "application/json" else await response.text()
            assert response.status < 400, f"sandbox admin {method} {path}: {response.status} {data}"
            return data

    def waiting_client(self, waits: list[float], **options: Any) -> PartnerCenterClient:
        """A client of this sandbox whose waits (Retry-After, back-off) are recorded in `waits` and move
        the sandbox's frozen clock instead of this machine's time."""

        async def sleep(seconds: float) -> None:
            waits.append(seconds)
            self.clock.advance(timedelta(seconds=seconds))

        return PartnerCenterClient(
            self.session,
            base_url=self.url,
            price_sheet_url=self.url,
            tokens=StaticTokenProvider(self.token),
            sleep=sleep,
            **options,
        )


async def _no_wait(_: float) -> None:
    return None


async def _start_test_sandbox(database_url: str, clock: SandboxClock) -> RunningSandbox:
    return await start_sandbox(
        database_url=database_url,
        accepted_token=SANDBOX_TOKEN,
        clock=clock,
        settings=SandboxSettings(availability_salt="tests"),
    )


async def _make_sandbox_template(path: Path) -> None:
    running = await _start_test_sandbox(f"sqlite+aiosqlite:///{path}", SandboxClock(frozen_at=SANDBOX_START))
    await running.close()
    assert_self_contained(path)


@pytest.fixture(scope="session")
def sandbox_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SQLite file of a sandbox that has started once (tables made, domains seeded); each test's
    sandbox starts on a copy."""
    path = tmp_path_factory.mktemp("templates") / "sandbox.sqlite3"
    run_in_own_loop(_make_sandbox_template(path))
    return path


@pytest.fixture
async def sandbox(
    request: pytest.FixtureRequest, tmp_path: Any, sandbox_template: Path, linked_demo: LinkedDemoSnapshots
) -> AsyncIterator[Sandbox]:
    """Started on a copy of `sandbox_template`, or for a test of the linked demo customer, of the
    sandbox in `linked_demo` that holds its tenant (the test's database is the matching copy)."""
    template = sandbox_template
    match _links_the_demo_customer(request):
        case "sqlite":
            template = linked_demo.sqlite(_recipe(request)).sandbox
        case "postgres":
            template = linked_demo.postgres(request.getfixturevalue("postgres_databases"), _recipe(request)).sandbox
    clock = SandboxClock(frozen_at=SANDBOX_START)
    running = await _start_test_sandbox(copy_sqlite_template(template, Path(tmp_path) / "sandbox.sqlite3"), clock)
    try:
        async with aiohttp.ClientSession() as session:
            yield Sandbox(
                running.url, SANDBOX_TOKEN, clock, _sandbox_client(session, running.url, clock), session, running
            )
    finally:
        await running.close()


def _sandbox_client(session: aiohttp.ClientSession, url: str, _clock: SandboxClock) -> PartnerCenterClient:
    """The product's client on a test sandbox, on the sandbox's clock as the app's client is."""
    return PartnerCenterClient(
        session,
        base_url=url,
        price_sheet_url=url,
        tokens=StaticTokenProvider(SANDBOX_TOKEN),
        sleep=_no_wait,
        poll_interval=0.01,
    )


def sandbox_opener(sandbox: Sandbox) -> Callable[[Settings], AbstractAsyncContextManager[PartnerCenter]]:
    """For `create_app(partner_center=...)`: the app uses the test's sandbox (and its clock)."""
    return _client_opener(sandbox.client, sandbox.clock)


def _client_opener(
    client: PartnerCenterClient, clock: SandboxClock
) -> Callable[[Settings], AbstractAsyncContextManager[PartnerCenter]]:
    @asynccontextmanager
    async def _open(_: Settings) -> AsyncIterator[PartnerCenter]:
        yield PartnerCenter(client, Clock(clock.now))

    return _open


@pytest.fixture
def outbox(tmp_path: Any) -> Path:
    """Where the tests' mail goes (the outbox transport): one .eml file per message."""
    return Path(tmp_path) / "outbox"


def outbox_messages(folder: Path) -> list[EmailMessage]:
    """The mail delivered to the outbox, oldest first."""
    if not folder.exists():
        return []
    return [
        message_from_bytes(path.read_bytes(), policy=email_policy.default)  # type: ignore[misc]
        for path in sorted(folder.glob("*.eml"), key=lambda item: item.stat().st_mtime_ns)
    ]


@pytest.fixture
async def services(database_url: str, sandbox: Sandbox, outbox: Path) -> AsyncIterator[Services]:
    engine = create_engine(database_url)
    yield build_services(
        engine, Settings(database_url=database_url, mail_outbox_dir=outbox), sandbox.client, sandbox.microsoft_clock
    )
    await engine.dispose()


@pytest.fixture
async def sqlite_services(sqlite_url: str, sandbox: Sandbox, outbox: Path) -> AsyncIterator[Services]:
    engine = create_engine(sqlite_url)
    yield build_services(
        engine, Settings(database_url=sqlite_url, mail_outbox_dir=outbox), sandbox.client, sandbox.microsoft_clock
    )
    await engine.dispose()


@pytest.fixture
async def connector(aiohttp_server: Any) -> AsyncIterator[tuple[FakeConnector, str]]:
    fake = FakeConnector()
    server = await aiohttp_server(fake.app())
    yield fake, str(server.make_url("")).rstrip("/") + "/"


@pytest.fixture(scope="session")
def private_ca() -> trustme.CA:
    """A certificate authority that only the tests trust."""
    return trustme.CA()


@dataclass
class TlsConnector:
    """The fake connector over https on loopback, its certificate (for 127.0.0.1 and localhost) signed by
    the tests' CA; `trust` is a client TLS context that trusts it (`create_app(connector_tls=...)`)."""

    fake: FakeConnector
    url: str
    trust: ssl.SSLContext


@pytest.fixture
async def tls_connector(aiohttp_server: Any, private_ca: trustme.CA) -> TlsConnector:
    fake = FakeConnector()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    private_ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_tls)
    server = await aiohttp_server(fake.app(), ssl=server_tls)
    trust = ssl.create_default_context()
    private_ca.configure_trust(trust)
    return TlsConnector(fake, str(server.make_url("")).rstrip("/") + "/", trust)


BotFactory = Callable[..., Awaitable[TestClient]]


def _bot_settings(database_url: str, outbox: Path, changes: dict[str, Any] | None = None) -> Settings:
    """The settings `make_bot` starts the app with, `changes` (any setting) applied."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "job_poll_interval_seconds": 0.05,
        "mail_outbox_dir": outbox,
    }
    return Settings(**{**values, **(changes or {})})


@dataclass(frozen=True)
class StartedBotDatabase:
    """A test database as the app's start-up leaves it against an untouched test sandbox: demo
    organisation seeded, catalog synced, demo price list generated, unpriced products alerted."""

    path: Path
    settings: Settings

    def fits(self, settings: Settings) -> bool:
        """The start-up with `settings` would have written the same (it seeds and prices the demo alike)."""
        return (settings.seeds_demo_organisation, settings.uses_partner_center_sandbox) == (
            self.settings.seeds_demo_organisation,
            self.settings.uses_partner_center_sandbox,
        )


async def _start_the_bot_once(folder: Path, sqlite_template: Path, sandbox_template: Path) -> StartedBotDatabase:
    path = folder / "started-bot.sqlite3"
    settings = _bot_settings(copy_sqlite_template(sqlite_template, path), folder / "outbox")
    clock = SandboxClock(frozen_at=SANDBOX_START)
    running = await _start_test_sandbox(copy_sqlite_template(sandbox_template, folder / "sandbox.sqlite3"), clock)
    try:
        async with aiohttp.ClientSession() as session:
            client = _sandbox_client(session, running.url, clock)
            runner = web.AppRunner(create_app(settings, partner_center=_client_opener(client, clock), run_jobs=False))
            await runner.setup()
            await runner.cleanup()
    finally:
        await running.close()
    assert_self_contained(path)
    return StartedBotDatabase(path, settings)


@pytest.fixture(scope="session")
def started_bot_database(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, sandbox_template: Path
) -> StartedBotDatabase:
    """Made once per test process by the app's own start-up, so that `make_bot` need not redo it."""
    folder = tmp_path_factory.mktemp("started-bot")
    return run_in_own_loop(_start_the_bot_once(folder, sqlite_template, sandbox_template))


@pytest.fixture
def make_bot(
    aiohttp_client: Any,
    test_database_file: SqliteCopy,
    sandbox: Sandbox,
    outbox: Path,
    started_bot_database: StartedBotDatabase,
) -> BotFactory:
    """Build the real app (unauthenticated local mode unless settings say otherwise), talking to the
    test's Partner Center sandbox.

    The app's start-up seeds the demo organisation, syncs the catalog and prices it (a few hundred
    milliseconds). When the test's database and sandbox are still as the fixtures made them, the
    database is first replaced with `started_bot_database`, what that start-up would have written, and
    the app finds its work done; `make_bot(cold_start=True)` always starts from the migrated database."""

    async def _make(*, cold_start: bool = False, **overrides: Any) -> TestClient:
        settings = _bot_settings(test_database_file.url, outbox, overrides.pop("settings", {}))
        if (
            not cold_start
            and "partner_center" not in overrides
            and settings.database_url == test_database_file.url
            and started_bot_database.fits(settings)
            and sandbox.untouched()
            and test_database_file.untouched()
        ):
            test_database_file.replace_with(started_bot_database.path)
        overrides.setdefault("partner_center", sandbox_opener(sandbox))
        return await aiohttp_client(create_app(settings, **overrides))

    return _make


@pytest.fixture
def make_bot_on_database(make_bot: BotFactory, database_url: str) -> BotFactory:
    """`make_bot` on the test's `database_url`: the same bot test runs on SQLite and on PostgreSQL
    (with the `services` and `demo_customer` fixtures, which use that database too)."""

    async def _make(**overrides: Any) -> TestClient:
        overrides["settings"] = {"database_url": database_url, **overrides.get("settings", {})}
        return await make_bot(**overrides)

    return _make


def runtime_of(client: TestClient) -> BotRuntime:
    return client.app[RUNTIME]


def message(
    text: str | None,
    *,
    service_url: str,
    conversation_id: str = "personal-chat-alex",
    user_id: str = "user-id-0",
    name: str = "Alex Wilber",
    aad_object_id: str | None = "00000000-0000-0000-0000-0000000000020",
    tenant_id: str | None = PLAYGROUND_TENANT_ID,
    value: dict[str, Any] | None = None,
    conversation_type: str = "personal",
    activity_id: str | None = None,
    mention_bot: bool = False,
    locale: str = "en-US",
) -> dict[str, Any]:
    """A Teams-shaped message activity."""
    activity: dict[str, Any] = {
        "type": "message",
        "id": activity_id or uuid.uuid4().hex,
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": {"id": user_id, "name": name, **({"aadObjectId": aad_object_id} if aad_object_id else {})},
        "recipient": {"id": "28:bot-id", "name": "CSP Bot"},
        "conversation": {
            "id": conversation_id,
            "conversationType": conversation_type,
            **({"isGroup": True} if conversation_type != "personal" else {}),
        },
        "channelData": {"tenant": {"id": tenant_id}} if tenant_id else {},
        "locale": locale,
    }
    if text is not None:
        activity["text"] = f"<at>CSP Bot</at> {text}" if mention_bot else text
        activity["textFormat"] = "plain"
    if mention_bot:
        activity["entities"] = [
            {"type": "mention", "mentioned": {"id": "28:bot-id", "name": "CSP Bot"}, "text": "<at>CSP Bot</at>"}
        ]
    if value is not None:
        activity["value"] = value
    return activity


async def link_demo_customer(services: Services, *, domain_prefix: str = "contosodemo") -> OrganisationView:
    """The demo organisation (seeded if missing) with a Microsoft tenant created in the sandbox and
    the Microsoft Customer Agreement attested — ready to buy. Returns its view."""
    await seed_demo_organisation(services.organisations)
    org = await services.organisations.get(DEMO_SLUG)
    if org.partner_center_customer_id:
        return org
    client = services.partner_center
    customer = await client.create_customer(
        Customer(
            company_profile=CustomerCompanyProfile(domain=f"{domain_prefix}.onmicrosoft.com"),
            billing_profile=CustomerBillingProfile(
                email=org.contact_email,
                culture=org.culture,
                language=org.language,
                company_name=org.name,
                default_address=Address(
                    country=org.country,
                    city=org.city,
                    state=org.state,
                    address_line1=org.address_line1,
                    postal_code=org.postal_code,
                    first_name=org.contact_first_name,
                    last_name=org.contact_last_name,
                    phone_number=org.contact_phone.replace(" ", "").lstrip("+"),
                ),
            ),
        )
    )
    assert customer.id
    await client.accept_agreement(
        customer.id,
        Contact(first_name=org.contact_first_name, last_name=org.contact_last_name, email=org.contact_email),
    )
    return await services.organisations.set_partner_center_customer(org.id, customer.id, actor="tests")


@dataclass(frozen=True)
class LinkedDemo:
    """A database where `link_demo_customer` has run (a SQLite file or a PostgreSQL template
    database) and the SQLite file of the sandbox that holds its tenant."""

    database: Path | str
    sandbox: Path


class LinkedDemoSnapshots:
    """What `link_demo_customer` leaves in the app's database and the sandbox, made once per test
    process and database kind (on first use) by `link_demo_customer` itself. A test that uses the
    `demo_customer` or `sqlite_demo_customer` fixture starts on copies of both: that fixture then finds
    the demo organisation linked (and checks it is), instead of seeding it and creating its tenant."""

    def __init__(self, folder: Path, sqlite_template: Path, sandbox_template: Path) -> None:
        self._folder = folder
        self._sqlite_template = sqlite_template
        self._sandbox_template = sandbox_template
        self._sqlite: dict[Recipe, LinkedDemo] = {}
        self._postgres: dict[Recipe, LinkedDemo] = {}

    def sqlite(self, recipe: Recipe = ()) -> LinkedDemo:
        if recipe not in self._sqlite:
            stem = f"linked-demo-{len(self._sqlite)}"
            path, sandbox = self._folder / f"{stem}.sqlite3", self._folder / f"{stem}-sandbox.sqlite3"
            run_in_own_loop(self._link(copy_sqlite_template(self._sqlite_template, path), sandbox, recipe))
            assert_self_contained(path)
            self._sqlite[recipe] = LinkedDemo(path, sandbox)
        return self._sqlite[recipe]

    def postgres(self, databases: PostgresTestDatabases, recipe: Recipe = ()) -> LinkedDemo:
        if recipe not in self._postgres:
            sandbox = self._folder / f"linked-demo-postgres-{len(self._postgres)}-sandbox.sqlite3"

            async def _make() -> str:
                name = await databases.take()
                await self._link(databases.url_of(name), sandbox, recipe)
                return name

            name = run_in_own_loop(_make())
            databases.keep_as_template(name)
            self._postgres[recipe] = LinkedDemo(name, sandbox)
        return self._postgres[recipe]

    async def _link(self, database_url: str, sandbox_path: Path, recipe: Recipe) -> None:
        clock = SandboxClock(frozen_at=SANDBOX_START)
        running = await _start_test_sandbox(copy_sqlite_template(self._sandbox_template, sandbox_path), clock)
        try:
            async with aiohttp.ClientSession() as session:
                engine = create_engine(database_url)
                try:
                    settings = Settings(database_url=database_url, mail_outbox_dir=self._folder / "outbox")
                    client = _sandbox_client(session, running.url, clock)
                    services = build_services(engine, settings, client, Clock(clock.now))
                    await link_demo_customer(services)
                    for step in recipe:
                        await step(services)
                finally:
                    await engine.dispose()
        finally:
            await running.close()
        assert_self_contained(sandbox_path)


@pytest.fixture(scope="session")
def linked_demo(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, sandbox_template: Path
) -> LinkedDemoSnapshots:
    return LinkedDemoSnapshots(tmp_path_factory.mktemp("linked-demo"), sqlite_template, sandbox_template)


Recipe = tuple[Callable[[Services], Awaitable[None]], ...]
_STEPS = "demo_customer_steps"


def demo_customer_then(*steps: Callable[[Services], Awaitable[None]]) -> Callable[[T], T]:
    """On a fixture (under `@pytest.fixture`) that uses `demo_customer` or `sqlite_demo_customer`:
    the tests using it need `steps` taken after the demo customer is linked. That fixture takes them
    (in place of the decorated one), or rather, the test starts on a snapshot where they were taken
    once per process on the same state (`LinkedDemoSnapshots`). The decorated fixture must be
    defined (or imported) in the test's module."""

    def declare(fixture_function: T) -> T:
        setattr(fixture_function, _STEPS, steps)
        return fixture_function

    return declare


def _recipe(request: pytest.FixtureRequest) -> Recipe:
    """The steps a fixture of the test's module declared with `demo_customer_then`."""
    module = request.node.module
    declared = (getattr(getattr(module, name, None), _STEPS, None) for name in request.fixturenames)
    recipes = {steps for steps in declared if isinstance(steps, tuple)}
    recipes.discard(())
    assert len(recipes) <= 1, f"{request.node.nodeid}: two fixtures declare different demo_customer_then steps"
    return recipes.pop() if recipes else ()


async def _linked_demo_customer(request: pytest.FixtureRequest, services: Services) -> OrganisationView:
    org = await link_demo_customer(services)
    if _links_the_demo_customer(request) is None:  # not on a snapshot: take the steps here
        for step in _recipe(request):
            await step(services)
    return org


def _links_the_demo_customer(request: pytest.FixtureRequest) -> str | None:
    """ "sqlite" or "postgres" when the test links the demo customer in that database, through exactly
    one of the `demo_customer` fixtures (on SQLite, both use the same file); else None."""
    names = request.fixturenames
    backend = getattr(getattr(request.node, "callspec", None), "params", {}).get("database_url")
    if "demo_customer" in names and ("sqlite_demo_customer" not in names or backend == "sqlite"):
        return backend if isinstance(backend, str) else None
    if "sqlite_demo_customer" in names and "demo_customer" not in names:
        return "sqlite"
    return None


@pytest.fixture
async def demo_customer(request: pytest.FixtureRequest, services: Services) -> OrganisationView:
    """On SQLite and PostgreSQL: the demo organisation as a sandbox customer that may buy (and the
    steps of `demo_customer_then` taken)."""
    return await _linked_demo_customer(request, services)


@pytest.fixture
async def sqlite_demo_customer(request: pytest.FixtureRequest, sqlite_services: Services) -> OrganisationView:
    """The same on the SQLite file `make_bot` uses, so a bot test starts with a linked tenant."""
    return await _linked_demo_customer(request, sqlite_services)
