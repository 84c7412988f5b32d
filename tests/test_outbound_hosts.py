"""The one rule for URLs an activity names (connector service URLs, file-consent uploads): https to an
allow-listed host or a name under it; loopback http or https only in the unauthenticated local mode."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import ValidationError

from services.outbound_hosts import HostAllowList, HostNotAllowed, OutboundHosts
from services.settings import TEAMS_CONNECTOR_HOSTS, Settings, SettingsError, parse_host_list

APP = {"microsoft_app_id": "app-id", "microsoft_app_password": "secret", "microsoft_app_tenant_id": "tenant"}


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


AUTHENTICATED = OutboundHosts.from_settings(_settings(**APP))
LOCAL = OutboundHosts.from_settings(_settings())

# Teams' own service URLs, as they arrive in activities (regional paths, GCC).
TEAMS_URLS = [
    "https://smba.trafficmanager.net/teams/",
    "https://smba.trafficmanager.net/amer/",
    "https://smba.trafficmanager.net/emea/",
    "https://SMBA.TrafficManager.net/apac/",
    "https://smba.onyx.prod.teams.trafficmanager.net",
    "https://smba.infra.gcc.teams.microsoft.com/gcc/",
    "https://smba.trafficmanager.net:443/amer/",
    "https://smba.trafficmanager.net./amer/",
]
NEVER = [
    "https://evil.example/",
    "http://smba.trafficmanager.net/amer/",  # the token would travel in clear
    "https://evilsmba.trafficmanager.net/",  # not on a dot boundary
    "https://attacker.trafficmanager.net/",
    "https://smba.trafficmanager.net.evil.example/amer/",
    "https://smba.trafficmanager.net@evil.example/",
    "https://user:pw@smba.trafficmanager.net/amer/",
    "https://smba.trafficmanager.net:notaport/",
    "https://[::1/",
    "ftp://smba.trafficmanager.net/",
    "smba.trafficmanager.net/amer/",
    "",
    None,
    "https://10.0.0.5/",
    "https://169.254.169.254/latest/meta-data/",
    "https://smba.infra.gov.teams.microsoft.us/",  # GCC High tokens come from api.botframework.us: not accepted here
]
LOOPBACK = [
    "http://localhost:56150/_connector",
    "http://127.0.0.1:3978/",
    "https://127.0.0.1:8443/",
    "http://[::1]:80/",
]


@pytest.mark.parametrize("url", TEAMS_URLS)
def test_teams_service_urls_are_allowed_in_both_modes(url: str) -> None:
    assert AUTHENTICATED.connector.allows(url)
    assert LOCAL.connector.allows(url)


@pytest.mark.parametrize("url", NEVER)
def test_other_hosts_and_plain_http_are_refused_in_both_modes(url: str | None) -> None:
    assert not AUTHENTICATED.connector.allows(url)
    assert not LOCAL.connector.allows(url)


@pytest.mark.parametrize("url", LOOPBACK)
def test_loopback_is_allowed_only_in_local_mode(url: str) -> None:
    assert LOCAL.connector.allows(url) and LOCAL.file_upload.allows(url)
    assert not AUTHENTICATED.connector.allows(url)
    assert not AUTHENTICATED.file_upload.allows(url)


def test_uploads_go_to_onedrive_for_business_over_https_only() -> None:
    upload = "https://contoso-my.sharepoint.com/personal/alex_contoso_com/_api/v2.0/drive/items/x/uploadSession?guid=1"
    assert AUTHENTICATED.file_upload.allows(upload)
    assert not AUTHENTICATED.file_upload.allows(upload.replace("https://", "http://"))
    assert not AUTHENTICATED.file_upload.allows("https://upload.evil.example/session")
    # The connector's hosts and the upload hosts are separate lists: the token never goes to SharePoint.
    assert not AUTHENTICATED.connector.allows(upload)
    assert not AUTHENTICATED.file_upload.allows("https://smba.trafficmanager.net/amer/")


def test_an_ip_address_in_the_list_admits_only_itself() -> None:
    hosts = HostAllowList("connector", "CONNECTOR_HOSTS", parse_host_list("127.0.0.1, ::1"))
    assert hosts.allows("https://127.0.0.1:8443/") and hosts.allows("https://[0:0:0:0:0:0:0:1]/")
    assert not hosts.allows("https://evil.127.0.0.1/")
    assert not hosts.allows("http://127.0.0.1:8443/")


def test_a_refusal_is_logged_with_the_host_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="services.outbound_hosts")
    with pytest.raises(HostNotAllowed):
        AUTHENTICATED.file_upload.check("http://upload.evil.example/session?key=upload-session-secret")
    (record,) = caplog.records
    assert "upload.evil.example" in record.getMessage() and "FILE_UPLOAD_HOSTS" in record.getMessage()
    assert "upload-session-secret" not in record.getMessage()


def test_host_lists_are_normalised() -> None:
    assert parse_host_list(" SMBA.TrafficManager.net , *.sharepoint.com,, smba.trafficmanager.net ") == (
        "smba.trafficmanager.net",
        "sharepoint.com",
    )
    assert _settings(connector_hosts="*.Example.com").connector_hosts == "example.com"
    assert _settings().connector_hosts == TEAMS_CONNECTOR_HOSTS


@pytest.mark.parametrize(
    "value", ["https://smba.trafficmanager.net", "smba.trafficmanager.net/amer", "host:443", "com", "bad_host.example"]
)
def test_a_host_setting_that_is_not_a_list_of_hosts_stops_start_up(value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        _settings(connector_hosts=value)
    assert "is not a host name" in str(raised.value)


def test_an_empty_connector_list_stops_an_authenticated_start_up() -> None:
    _settings(connector_hosts="").check_safe_to_serve()  # the local mode still reaches the Playground
    with pytest.raises(SettingsError) as raised:
        _settings(**APP, connector_hosts=" , ").check_safe_to_serve()
    assert "CONNECTOR_HOSTS" in str(raised.value)


@pytest.mark.parametrize("seconds", [-1, 301])
def test_the_clock_skew_stays_within_what_the_sdk_checks(seconds: int) -> None:
    with pytest.raises(ValidationError):
        _settings(token_clock_skew_seconds=seconds)
