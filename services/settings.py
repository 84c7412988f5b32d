"""Typed settings, read from the environment (and `.env`), one class for the whole app.

Every setting has a default that serves the embedded mode (SQLite, sandbox, outbox, loopback)
or fails start-up with a clear message.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from services.sealed_secrets import SecretBox, SecretsKeyError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_var_dir() -> Path:
    """Where the embedded default keeps its data: `var/` in a checkout (`make run`); an installed
    package uses the user's data folder (`$XDG_DATA_HOME/cspbot`, else `~/.local/share/cspbot`),
    never its own folder inside site-packages."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / "var"
    data_home = os.environ.get("XDG_DATA_HOME", "").strip()
    return (Path(data_home) if data_home else Path.home() / ".local" / "share") / "cspbot"


DEFAULT_VAR_DIR = _default_var_dir()
LOG_FORMATS = ("auto", "text", "json")


class SettingsError(ValueError):
    """A configuration that must not start (e.g. unauthenticated on a public address)."""


def is_loopback_host(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_HOST_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def parse_host_list(value: str) -> tuple[str, ...]:
    """The hosts of a comma-separated host setting, lower-cased; a leading `*.` means the same as none.

    Raises ValueError naming the first entry that is neither a host name with a dot nor an IP address."""
    hosts: list[str] = []
    for raw in value.split(","):
        entry = raw.strip().lower().removeprefix("*.").rstrip(".")
        if not entry:
            continue
        labels = entry.split(".")
        if not is_ip_address(entry) and (len(labels) < 2 or not all(_HOST_LABEL.match(label) for label in labels)):
            raise ValueError(
                f"{raw.strip()!r} is not a host name with a dot (like smba.trafficmanager.net) or an IP address; "
                "give host names only, without scheme, port or path"
            )
        hosts.append(entry)
    return tuple(dict.fromkeys(hosts))


# Teams' Bot Connector hosts of the public cloud and GCC, as Microsoft's Teams SDK allows them
# (docs/security.md cites the source). GCC High and DoD are left out: their tokens come from the US
# Government Bot Framework, which this bot does not accept.
TEAMS_CONNECTOR_HOSTS = (
    "smba.trafficmanager.net,smba.onyx.prod.teams.trafficmanager.net,smba.infra.gcc.teams.microsoft.com"
)


def describe_invalid_settings(error: ValidationError) -> str:
    """What is wrong with the configuration, one `NAME: problem` per setting (never the value)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']).upper()}: {problem['msg']}" for problem in error.errors()
    )


class Settings(BaseSettings):
    """All configuration. Field names are the environment variable names (case-insensitive)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- The bot's own identity (Azure Bot registration) -------------------------------------
    microsoft_app_id: str = ""
    microsoft_app_password: SecretStr = SecretStr("")
    microsoft_app_tenant_id: str = ""
    dangerously_allow_unauthenticated_requests: bool = False
    # How far a token's exp/nbf/iat may be off this machine's clock. At most 300: the SDK's own
    # validator already allows 300 s, ours is checked on top of it (docs/security.md).
    token_clock_skew_seconds: int = Field(default=60, ge=0, le=300)

    # --- Where the bot sends what an activity names (docs/security.md) -----------------------
    # https hosts (and names under them) that get the bot's replies and its outbound token. Loopback
    # http is allowed only in the unauthenticated local mode (the Agents Playground).
    connector_hosts: str = TEAMS_CONNECTOR_HOSTS
    # https hosts a file-consent upload may go to: OneDrive for Business.
    file_upload_hosts: str = "sharepoint.com"

    # --- Serving ------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=3978, ge=1, le=65535)
    log_level: str = "INFO"
    # text: one readable line per event (a person at a terminal); json: one JSON object per line (log
    # shippers); auto: text when stderr is a terminal, else json. `make run` sets text for the bot.
    log_format: str = "auto"
    # GET /metrics (Prometheus, docs/operations.md): with a token, only requests carrying
    # `Authorization: Bearer <token>`; without one, only direct requests from this machine (loopback, no
    # proxy's Forwarded/X-Forwarded-For header). At least 16 characters.
    metrics_token: SecretStr = SecretStr("")
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_VAR_DIR / 'cspbot.sqlite3'}"

    # --- Embedded default conveniences --------------------------------------------------------
    # Unset: seeded in the unauthenticated local mode only, never next to real Teams traffic.
    seed_demo_organisation: bool | None = None
    job_poll_interval_seconds: float = Field(default=1.0, gt=0)
    job_lease_seconds: int = Field(default=120, ge=5)

    # --- Turn tuning ------------------------------------------------------------------------------
    # How long a resolved caller is remembered; a role change made by the CLI or another replica
    # takes effect within this time (changes made in this process at once). 0 = always query.
    caller_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    # Teams shows "typing…" only for a turn still running after this long (fast turns need none).
    typing_indicator_delay_seconds: float = Field(default=0.5, ge=0)
    # ...and not while the event loop runs more than this many seconds behind: the process is
    # overloaded, and "typing…" would be one more request to Teams exactly then.
    typing_indicator_max_loop_lag_seconds: float = Field(default=0.1, gt=0)
    # Turns this process takes on at once (bot/overload.py): at most MAX_CONCURRENT_TURNS in flight,
    # of which at most MAX_WORKING_TURNS working (not waiting for Teams to take a reply). A message
    # beyond either is answered 503 with Retry-After: 1 before any work is done (Teams sends it
    # again), so admitted turns stay fast past capacity.
    max_concurrent_turns: int = Field(default=64, ge=1, le=10_000)
    max_working_turns: int = Field(default=4, ge=1, le=10_000)

    # --- Subscriptions and approvals -----------------------------------------------------------
    # A suspension request not decided within this many hours expires.
    approval_expiry_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    # The subscriptions card refreshes from Partner Center when its copy is older than this.
    subscriptions_refresh_minutes: float = Field(default=5.0, ge=0)

    # --- Warnings before money is locked in (docs/renewals.md) -----------------------------------
    # One warnings pass per this many minutes of Microsoft's time (the sandbox's clock when it runs);
    # every replica checks every WARNINGS_CHECK_SECONDS whether the current pass was submitted.
    warnings_interval_minutes: float = Field(default=60.0, ge=1, le=24 * 60)
    warnings_check_seconds: float = Field(default=60.0, gt=0, le=3600)

    # --- Users sync (docs/users-sync.md) -----------------------------------------------------------
    # Partner Center requests one organisation's users sync has in flight at most: one for the user
    # listing (its pages follow one another), the rest for subscribed SKUs, audit records and per-user
    # licences. 1 = one request at a time. A 429 holds back every call to that customer meanwhile.
    users_sync_concurrency: int = Field(default=8, ge=1, le=32)

    # --- Mail: SMTP when MAIL_SMTP_URL or SMTP_HOST is set, else .eml files in MAIL_OUTBOX_DIR -----
    mail_from: str = "CSP self-service <cspbot@localhost>"
    # smtp://user:password@host:587 (STARTTLS) or smtps://...:465; wins over the SMTP_* settings.
    # Checked when the services are built (a bad URL stops start-up; the message never repeats it).
    mail_smtp_url: SecretStr = SecretStr("")
    mail_outbox_dir: Path = DEFAULT_VAR_DIR / "outbox"
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = True

    # --- Secrets kept until used (a password waiting for its e-mail) are stored sealed ------------
    # A Fernet key (`cspbot secrets-key` makes one); comma-separated keys rotate: the first seals, all
    # open. Empty = the key in SECRETS_KEY_FILE, created on first start. Required with PostgreSQL
    # when authenticated (replicas must share it).
    secrets_key: SecretStr = SecretStr("")
    # Empty = beside the SQLite database (`<name>.secrets.key`), or var/secrets.key.
    secrets_key_file: Path | None = None

    # --- Partner Center ---------------------------------------------------------------------------
    # Empty URL = the built-in sandbox, started with the bot on its own loopback port.
    partner_center_url: str = ""
    partner_center_price_sheet_url: str = "https://api.partner.microsoft.com"
    partner_center_tenant_id: str = ""
    partner_center_client_id: str = ""
    partner_center_client_secret: SecretStr = SecretStr("")
    partner_center_refresh_token: SecretStr = SecretStr("")
    partner_center_authority: str = "https://login.microsoftonline.com"
    partner_center_timeout_seconds: float = Field(default=30.0, gt=0)
    # The sandbox: its port (0 = any free port) and database (empty = beside the bot's SQLite file,
    # or the bot's own database in its `sandbox_*` tables when that is not SQLite).
    partner_center_sandbox_port: int = Field(default=0, ge=0, le=65535)
    partner_center_sandbox_database_url: str = ""

    # --- Billing ------------------------------------------------------------------------------
    # Where users reach the bot's own HTTP server (export download links `/exports/{token}`);
    # empty = http://HOST:PORT (fine for the local Playground, not for Teams).
    public_base_url: str = ""

    @property
    def export_base_url(self) -> str:
        return (self.public_base_url.strip() or f"http://{self.host}:{self.port}").rstrip("/")

    @field_validator("secrets_key_file", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("connector_hosts", "file_upload_hosts")
    @classmethod
    def _host_list(cls, value: str) -> str:
        return ",".join(parse_host_list(value))

    @field_validator("metrics_token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value().strip()) < 16:
            raise ValueError("METRICS_TOKEN must be at least 16 characters (e.g. `openssl rand -hex 24`)")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {value!r}")
        return level

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        log_format = value.strip().lower()
        if log_format not in LOG_FORMATS:
            raise ValueError(f"LOG_FORMAT must be auto, text or json, not {value!r}")
        return log_format

    @property
    def authenticated(self) -> bool:
        """True when requests must carry a Bot Framework token (an App ID is configured)."""
        return bool(self.microsoft_app_id.strip())

    @property
    def uses_partner_center_sandbox(self) -> bool:
        return not self.partner_center_url.strip()

    @property
    def sandbox_database_url(self) -> str:
        if self.partner_center_sandbox_database_url:
            return self.partner_center_sandbox_database_url
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            database = Path(url.database)
            sibling = database.with_name(f"{database.stem}.partner-center-sandbox{database.suffix}")
            return url.set(database=str(sibling)).render_as_string(hide_password=False)
        return self.database_url

    def _var_file(self, suffix: str) -> Path:
        """A file of this bot beside its SQLite database (`<name>.<suffix>`), else `var/<suffix>`."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            database = Path(url.database)
            return database.with_name(f"{database.stem}.{suffix}")
        return DEFAULT_VAR_DIR / suffix

    @property
    def secrets_key_path(self) -> Path:
        if self.secrets_key_file is not None:
            return self.secrets_key_file
        return self._var_file("secrets.key")

    @property
    def sandbox_admin_file(self) -> Path:
        """Where the bot's built-in sandbox publishes its address and admin token while it runs (read by
        `cspbot sandbox clock|fault`)."""
        return self._var_file("partner-center-sandbox.admin.json")

    @property
    def seeds_demo_organisation(self) -> bool:
        if self.seed_demo_organisation is None:
            return not self.authenticated
        return self.seed_demo_organisation

    def check_safe_to_serve(self) -> None:
        """Refuse an unauthenticated bot on a non-loopback address unless explicitly allowed, and a
        real Partner Center URL without the credentials to call it."""
        if not self.uses_partner_center_sandbox:
            missing = [
                name
                for name, value in (
                    ("PARTNER_CENTER_TENANT_ID", self.partner_center_tenant_id),
                    ("PARTNER_CENTER_CLIENT_ID", self.partner_center_client_id),
                    ("PARTNER_CENTER_CLIENT_SECRET", self.partner_center_client_secret.get_secret_value()),
                )
                if not value.strip()
            ]
            if missing:
                raise SettingsError(
                    f"PARTNER_CENTER_URL is set, so {', '.join(missing)} must be set too (see docs/partner-center.md)."
                )
        if self.secrets_key.get_secret_value().strip():
            try:
                SecretBox.from_keys(self.secrets_key.get_secret_value())
            except SecretsKeyError as error:
                raise SettingsError(str(error)) from None
        if self.authenticated:
            if not self.microsoft_app_password.get_secret_value() or not self.microsoft_app_tenant_id:
                raise SettingsError(
                    "MICROSOFT_APP_ID is set, so MICROSOFT_APP_PASSWORD and MICROSOFT_APP_TENANT_ID are required too."
                )
            if not self.connector_hosts:
                raise SettingsError(
                    "CONNECTOR_HOSTS is empty, so the bot could answer nobody. Leave it unset for Teams' own hosts."
                )
            if make_url(self.database_url).get_backend_name() != "sqlite" and not self.secrets_key.get_secret_value():
                raise SettingsError(
                    "SECRETS_KEY is required with a shared database: every replica must open what another "
                    "sealed. Make one with 'cspbot secrets-key' and give it to all of them."
                )
            return
        if not is_loopback_host(self.host) and not self.dangerously_allow_unauthenticated_requests:
            raise SettingsError(
                f"HOST={self.host} is not a loopback address but MICROSOFT_APP_ID is empty, so anyone "
                "could talk to the bot unauthenticated. Set MICROSOFT_APP_ID (with its password and "
                "tenant), bind to 127.0.0.1, or set DANGEROUSLY_ALLOW_UNAUTHENTICATED_REQUESTS=true."
            )
