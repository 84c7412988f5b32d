"""Outgoing e-mail: tenant credentials, new users' passwords, directory passwords.

Two transports, chosen by settings: SMTP (`MAIL_SMTP_URL`, e.g. `smtp://user:password@host:587`
with STARTTLS, or the separate `SMTP_HOST`/`SMTP_PORT`/... settings) or, by default, a local outbox folder
where each message is one `.eml` file (readable only by the owner) — the embedded default's
"mail". A message may carry secrets (a password): they are placed into the body only at delivery,
never logged, never stored anywhere else, and never part of an error or alert text.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import re
import smtplib
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr

from services.alerts import AlertService
from services.db import utcnow
from services.errors import DomainError, InvalidInput

log = logging.getLogger(__name__)

_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")


def is_mail_address(value: str) -> bool:
    return len(value) <= 254 and _ADDRESS.match(value) is not None


class MailNotDelivered(DomainError):
    """The message could not be handed over; the operator has an alert. Safe to show."""


@dataclass(frozen=True)
class Mail:
    """A message to send. `body` may hold `{name}` placeholders filled from `secrets` at delivery."""

    to: str
    subject: str
    body: str
    secrets: Mapping[str, SecretStr] = field(default_factory=dict)
    # An optional HTML alternative with the same `{name}` placeholders (secrets are HTML-escaped).
    html: str = ""

    def render(self) -> str:
        text = self.body
        for name, value in self.secrets.items():
            text = text.replace("{" + name + "}", value.get_secret_value())
        return text

    def render_html(self) -> str:
        page = self.html
        for name, value in self.secrets.items():
            page = page.replace("{" + name + "}", html.escape(value.get_secret_value()))
        return page


class MailTransport(Protocol):
    async def deliver(self, message: EmailMessage) -> str:
        """Hand the message over; returns where it went (no secret in it)."""


class OutboxTransport:
    """Writes each message as an .eml file into a folder (the embedded default; tests read it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def deliver(self, message: EmailMessage) -> str:
        return await asyncio.to_thread(self._write, message)

    def _write(self, message: EmailMessage) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = utcnow().strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(message.as_bytes())
        return str(path)


class SmtpTransport:
    """SMTP with STARTTLS (unless disabled) and optional login; run off the event loop."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str = "",
        password: SecretStr | None = None,
        starttls: bool = True,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self._implicit_tls = implicit_tls
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout = timeout
        self._ssl_context = ssl_context

    async def deliver(self, message: EmailMessage) -> str:
        await asyncio.to_thread(self._send, message)
        return f"smtp://{self._host}:{self._port}"

    def _send(self, message: EmailMessage) -> None:
        if self._implicit_tls:
            context = self._ssl_context or ssl.create_default_context()
            with smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=context) as smtp:
                if self._username and self._password is not None:
                    smtp.login(self._username, self._password.get_secret_value())
                smtp.send_message(message)
            return
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
            if self._starttls:
                smtp.starttls(context=self._ssl_context or ssl.create_default_context())
            if self._username and self._password is not None:
                smtp.login(self._username, self._password.get_secret_value())
            smtp.send_message(message)


def smtp_transport_from_url(url: str, *, ssl_context: ssl.SSLContext | None = None) -> SmtpTransport:
    """`MAIL_SMTP_URL`: `smtp://[user[:password]@]host[:port]` sends with STARTTLS (port 587 by
    default; `?starttls=false` only for a relay on this machine), `smtps://` with TLS from the first
    byte (port 465). User and password are URL-encoded. A bad URL raises ValueError (no secret in it)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("MAIL_SMTP_URL must start with smtp:// (STARTTLS) or smtps:// (TLS)")
    if not parts.hostname:
        raise ValueError("MAIL_SMTP_URL has no host, e.g. smtp://user:password@smtp.example.com:587")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 587)
    except ValueError:
        raise ValueError("MAIL_SMTP_URL has a port that is not a number between 1 and 65535") from None
    options = {key.lower(): values[-1].lower() for key, values in parse_qs(parts.query).items()}
    starttls = options.get("starttls", "true") not in ("false", "0", "no", "off")
    return SmtpTransport(
        parts.hostname,
        port,
        username=unquote(parts.username or ""),
        password=SecretStr(unquote(parts.password)) if parts.password is not None else None,
        starttls=starttls and parts.scheme == "smtp",
        implicit_tls=parts.scheme == "smtps",
        ssl_context=ssl_context,
    )


class Mailer:
    def __init__(self, transport: MailTransport, *, sender: str, alerts: AlertService) -> None:
        self._transport = transport
        self._sender = sender
        self._alerts = alerts

    async def send(self, mail: Mail, *, organisation_id: int | None = None, sent_at: datetime | None = None) -> None:
        """Deliver one message or raise `MailNotDelivered` (after raising an operator alert)."""
        if not is_mail_address(mail.to):
            raise InvalidInput(f"{mail.to!r} is not a valid e-mail address.")
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Date"] = format_datetime(sent_at or utcnow())
        message["Message-ID"] = make_msgid(domain=self._sender.rsplit("@", 1)[-1] or "localhost")
        message.set_content(mail.render())
        if mail.html:
            message.add_alternative(mail.render_html(), subtype="html")
        try:
            where = await self._transport.deliver(message)
        except (OSError, smtplib.SMTPException) as error:
            # The error text of smtplib never holds the body; still, only its class is kept.
            log.warning("mail to %s (%r) not delivered: %s", mail.to, mail.subject, type(error).__name__)
            await self._alerts.raise_alert(
                "mail_undeliverable",
                f"E-mail '{mail.subject}' to {mail.to} could not be delivered ({type(error).__name__}). "
                "Check the SMTP settings; the person did not get it.",
                dedup_key=f"mail_undeliverable:{mail.to}:{mail.subject}",
                severity="error",
                organisation_id=organisation_id,
            )
            raise MailNotDelivered(
                f"The e-mail to {mail.to} could not be sent. The reseller has been told; please try again later."
            ) from None
        log.info("mail '%s' sent to %s via %s", mail.subject, mail.to, where)
