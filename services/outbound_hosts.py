"""Where the bot may send what Teams tells it to send somewhere: one rule for every URL that arrives in
an activity (a conversation's `serviceUrl`, which receives the bot's outbound bearer token; a file
consent's `uploadUrl`, which receives an export).

A URL passes when it is https to a host of the allow-list: the host itself or a name under it on a dot
boundary (`smba.trafficmanager.net` admits `smba.trafficmanager.net` and `x.smba.trafficmanager.net`,
never `evilsmba.trafficmanager.net`); an IP address in the list admits only itself. In the
unauthenticated local mode, http or https to this machine (the Agents Playground's
`http://localhost:<port>/_connector`) passes too. Nothing else does: no http to a remote host, no user
name or password in the URL, no unparsable port.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from yarl import URL

from services.errors import DomainError
from services.settings import Settings, is_ip_address, is_loopback_host, parse_host_list

log = logging.getLogger(__name__)


class HostNotAllowed(DomainError):
    """A URL from an activity names a host the bot does not send to."""

    code = "host_not_allowed"


def _parse(url: str) -> URL | None:
    """The URL as aiohttp will see it (yarl), or None when it cannot be parsed."""
    try:
        parsed = URL(url.strip())
        parsed.explicit_port  # noqa: B018 — a port that is not a number in range raises here
    except (ValueError, TypeError, UnicodeError):
        return None
    return parsed


def _host_of(url: str) -> str:
    """The host of a URL for a log line (never the path or query: an upload URL carries a session key)."""
    parsed = _parse(url)
    return (parsed.raw_host or "?") if parsed is not None else "?"


@dataclass(frozen=True)
class HostAllowList:
    """https to `hosts`; and, when `loopback` (local mode), http or https to this machine."""

    purpose: str  # what is sent there: "connector", "file upload"
    setting: str  # the setting that lists the hosts, for the operator's log line
    hosts: tuple[str, ...]
    loopback: bool = False

    def allows(self, url: str | None) -> bool:
        parsed = _parse(url) if url else None
        if parsed is None or not parsed.absolute:
            return False
        scheme = parsed.scheme.lower()
        host = (parsed.raw_host or "").lower().rstrip(".")
        if not host or parsed.raw_user is not None or parsed.raw_password is not None:
            return False
        if self.loopback and scheme in ("http", "https") and is_loopback_host(host):
            return True
        if scheme != "https":
            return False
        if is_ip_address(host):
            address = ipaddress.ip_address(host)
            return any(is_ip_address(allowed) and ipaddress.ip_address(allowed) == address for allowed in self.hosts)
        return any(
            host == allowed or (host.endswith("." + allowed) and not is_ip_address(allowed)) for allowed in self.hosts
        )

    def check(self, url: str | None) -> None:
        """Raise `HostNotAllowed` (logged as a warning naming only the host) unless `allows(url)`."""
        if not self.allows(url):
            log.warning(
                "refused to send to %s: not https to an allowed %s host (%s)%s",
                _host_of(url or ""),
                self.purpose,
                self.setting,
                "" if self.loopback else "; loopback only in the unauthenticated local mode",
            )
            raise HostNotAllowed(f"That address is not an allowed {self.purpose} host, so nothing was sent there.")


@dataclass(frozen=True)
class OutboundHosts:
    """The two allow-lists: Bot Connector service URLs (they get the bot's token) and file uploads."""

    connector: HostAllowList
    file_upload: HostAllowList

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundHosts:
        local = not settings.authenticated
        return cls(
            connector=HostAllowList(
                "connector", "CONNECTOR_HOSTS", parse_host_list(settings.connector_hosts), loopback=local
            ),
            file_upload=HostAllowList(
                "file upload", "FILE_UPLOAD_HOSTS", parse_host_list(settings.file_upload_hosts), loopback=local
            ),
        )
