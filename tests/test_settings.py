"""Settings validation and the refusal to serve unauthenticated on a public address."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app import create_app
from app import main as app_main
from services.logging_context import logging_configured
from services.settings import PROJECT_ROOT, Settings, SettingsError
from tests.fakes import free_port

APP_ID = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
TENANT_ID = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"


def make_settings(**values: Any) -> Settings:
    """Settings from these values only: no developer `.env`, no MICROSOFT_APP_* from the shell."""
    defaults: dict[str, Any] = {
        "microsoft_app_id": "",
        "microsoft_app_password": "",
        "microsoft_app_tenant_id": "",
        "dangerously_allow_unauthenticated_requests": False,
    }
    return Settings(_env_file=None, **{**defaults, **values})  # type: ignore[call-arg]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "bot.example.com", "127.0.0.1.example.com"])
def test_unauthenticated_on_a_public_host_is_refused(host: str) -> None:
    settings = make_settings(host=host)
    assert not settings.authenticated
    with pytest.raises(SettingsError) as raised:
        settings.check_safe_to_serve()
    assert "DANGEROUSLY_ALLOW_UNAUTHENTICATED_REQUESTS" in str(raised.value)
    assert "MICROSOFT_APP_ID" in str(raised.value)


def test_whitespace_app_id_is_not_an_app_id() -> None:
    settings = make_settings(host="0.0.0.0", microsoft_app_id="   ")
    assert not settings.authenticated
    with pytest.raises(SettingsError):
        settings.check_safe_to_serve()


def test_the_dangerous_flag_allows_a_public_host() -> None:
    make_settings(host="0.0.0.0", dangerously_allow_unauthenticated_requests=True).check_safe_to_serve()


def test_the_dangerous_flag_reads_env_style_strings() -> None:
    make_settings(host="0.0.0.0", dangerously_allow_unauthenticated_requests="true").check_safe_to_serve()
    with pytest.raises(SettingsError):
        make_settings(host="0.0.0.0", dangerously_allow_unauthenticated_requests="false").check_safe_to_serve()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts_may_serve_unauthenticated(host: str) -> None:
    make_settings(host=host).check_safe_to_serve()


def test_authenticated_settings_may_serve_anywhere() -> None:
    settings = make_settings(
        host="0.0.0.0",
        microsoft_app_id=APP_ID,
        microsoft_app_password="s3cret-value",
        microsoft_app_tenant_id=TENANT_ID,
    )
    assert settings.authenticated
    settings.check_safe_to_serve()


@pytest.mark.parametrize(
    "missing",
    [
        {"microsoft_app_password": "", "microsoft_app_tenant_id": TENANT_ID},
        {"microsoft_app_password": "s3cret-value", "microsoft_app_tenant_id": ""},
        {"microsoft_app_password": "", "microsoft_app_tenant_id": ""},
    ],
    ids=["no-password", "no-tenant", "neither"],
)
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_app_id_needs_password_and_tenant(missing: dict[str, str], host: str) -> None:
    settings = make_settings(host=host, microsoft_app_id=APP_ID, **missing)
    with pytest.raises(SettingsError) as raised:
        settings.check_safe_to_serve()
    message = str(raised.value)
    assert "MICROSOFT_APP_PASSWORD" in message and "MICROSOFT_APP_TENANT_ID" in message
    assert "s3cret-value" not in message


def test_password_is_not_shown_by_repr() -> None:
    settings = make_settings(microsoft_app_id=APP_ID, microsoft_app_password="s3cret-value")
    assert "s3cret-value" not in repr(settings)
    assert "s3cret-value" not in str(settings)


@pytest.mark.parametrize("level", ["VERBOSE", "", "trace", "10"])
def test_unknown_log_level_is_a_validation_error(level: str) -> None:
    with pytest.raises(ValidationError) as raised:
        make_settings(log_level=level)
    assert "LOG_LEVEL" in str(raised.value)


@pytest.mark.parametrize("level", ["debug", "Info", "WARNING"])
def test_log_level_is_normalised(level: str) -> None:
    assert make_settings(log_level=level).log_level == level.upper()


@pytest.mark.parametrize("log_format", ["xml", "", "plain", "JSONL"])
def test_unknown_log_format_is_a_validation_error(log_format: str) -> None:
    with pytest.raises(ValidationError) as raised:
        make_settings(log_format=log_format)
    assert "LOG_FORMAT must be auto, text or json" in str(raised.value)


@pytest.mark.parametrize(("given", "kept"), [("JSON", "json"), (" Text ", "text"), ("auto", "auto")])
def test_log_format_is_normalised_and_auto_by_default(given: str, kept: str) -> None:
    assert make_settings(log_format=given).log_format == kept
    assert make_settings().log_format == "auto"


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_port_out_of_range_is_a_validation_error(port: int) -> None:
    with pytest.raises(ValidationError):
        make_settings(port=port)


def test_create_app_refuses_an_unauthenticated_public_host(tmp_path: Path) -> None:
    settings = make_settings(host="0.0.0.0", database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
    with pytest.raises(SettingsError, match="DANGEROUSLY_ALLOW_UNAUTHENTICATED_REQUESTS"):
        create_app(settings)
    assert not (tmp_path / "x.sqlite3").exists()  # refused before touching anything


def test_create_app_refuses_an_app_id_without_password(tmp_path: Path) -> None:
    settings = make_settings(microsoft_app_id=APP_ID, database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
    with pytest.raises(SettingsError):
        create_app(settings)


def _app_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database: Path, **settings: str
) -> tuple[object, str]:
    """What `python app.py` does (`app.main`, in-process: the script itself is started by the replica
    tests) with these settings on top of a local-mode environment, in the project folder. Returns the
    exit code it stops with and what it wrote to stderr; the tests' logging set-up is given back."""
    for key in list(os.environ):
        if key.upper().startswith(("MICROSOFT_APP_", "DANGEROUSLY_", "HOST", "PORT", "DATABASE_URL", "LOG_")):
            monkeypatch.delenv(key)
    environment = {
        "PORT": str(free_port()),
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        # Explicitly empty: environment variables win over any developer .env in the project.
        "MICROSOFT_APP_ID": "",
        "DANGEROUSLY_ALLOW_UNAUTHENTICATED_REQUESTS": "false",
        "LOG_LEVEL": "INFO",
        **settings,
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(PROJECT_ROOT)
    capsys.readouterr()
    with logging_configured("WARNING", "text"), pytest.raises(SystemExit) as stopped:
        app_main([])
    return stopped.value.code, capsys.readouterr().err


def test_python_app_py_exits_2_on_an_unauthenticated_public_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "refused.sqlite3"
    code, stderr = _app_main(monkeypatch, capsys, database, HOST="0.0.0.0")
    assert code == 2, stderr
    assert "DANGEROUSLY_ALLOW_UNAUTHENTICATED_REQUESTS" in stderr
    assert "HOST=0.0.0.0" in stderr
    assert "Traceback" not in stderr
    assert not database.exists()


def test_python_app_py_exits_2_with_one_clear_line_on_an_invalid_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "refused.sqlite3"
    code, stderr = _app_main(monkeypatch, capsys, database, LOG_FORMAT="xml")
    assert code == 2, stderr
    assert "invalid configuration: LOG_FORMAT:" in stderr
    assert "LOG_FORMAT must be auto, text or json" in stderr
    assert "Traceback" not in stderr
    assert not database.exists()


def test_demo_organisation_is_seeded_only_in_local_mode_unless_asked():
    local = Settings(_env_file=None)
    assert local.seeds_demo_organisation
    production = Settings(
        _env_file=None,
        microsoft_app_id="6f1c8d2e-0000-4000-8000-000000000001",
        microsoft_app_password="x",
        microsoft_app_tenant_id="6f1c8d2e-0000-4000-8000-000000000002",
    )
    assert not production.seeds_demo_organisation
    assert Settings(_env_file=None, seed_demo_organisation=False).seeds_demo_organisation is False


@pytest.mark.parametrize(
    "missing", ["partner_center_tenant_id", "partner_center_client_id", "partner_center_client_secret"]
)
def test_a_real_partner_center_url_needs_its_credentials(missing: str) -> None:
    values = {
        "partner_center_url": "https://api.partnercenter.microsoft.com",
        "partner_center_tenant_id": "11111111-1111-1111-1111-111111111111",
        "partner_center_client_id": "22222222-2222-2222-2222-222222222222",
        "partner_center_client_secret": "s3cret-value",
    }
    values[missing] = ""
    with pytest.raises(SettingsError, match=missing.upper()) as raised:
        make_settings(**values).check_safe_to_serve()
    assert "s3cret-value" not in str(raised.value)


def test_the_sandbox_is_the_default_and_keeps_its_own_sqlite_file(tmp_path: Path) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")
    assert settings.uses_partner_center_sandbox
    assert settings.sandbox_database_url == f"sqlite+aiosqlite:///{tmp_path / 'bot.partner-center-sandbox.sqlite3'}"
    shared = make_settings(database_url="postgresql+asyncpg://bot@db/cspbot")
    assert shared.sandbox_database_url == "postgresql+asyncpg://bot@db/cspbot"


def test_every_setting_is_in_env_example_and_documented() -> None:
    """Each setting is in `.env.example` and explained in the README (the Partner Center ones in
    docs/partner-center.md, which the README's configuration table points to)."""
    root = Path(__file__).resolve().parent.parent
    example = (root / ".env.example").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    partner_center = (root / "docs" / "partner-center.md").read_text(encoding="utf-8")
    missing = []
    for name in Settings.model_fields:
        key = name.upper()
        docs = partner_center if key.startswith("PARTNER_CENTER_") else readme
        if key not in example or key not in docs:
            missing.append(key)
    assert missing == []
