"""Outgoing e-mail: tenant credentials, new users' passwords, directory passwords.

Two transports, chosen by settings: SMTP (`MAIL_SMTP_URL`, e.g. `smtp://user:password@host:587`
with STARTTLS, or the separate `SMTP_HOST`/`SMTP_PORT`/... settings) or, by default, a local outbox folder
where each message is one `.eml` file (readable only by the owner) — the embedded default's
"mail". A message may carry secrets (a password): they are placed into the body only at delivery,
kept in the outbox table only sealed (`services/sealed_secrets.py`) and only until delivered, never
logged, and never part of an error or alert text.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import AlertService
from services.db import utcnow
from services.errors import Conflict, DomainError, InvalidInput, NotFound
from services.i18n import _
from services.jobs import JobService, JobView
from services.models import MailMessage
from services.sealed_secrets import SecretBox, SecretUnreadable

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


MAIL_JOB = "mail.deliver"
QUEUED, SENT, FAILED = "queued", "sent", "failed"
# After a failed try the next one waits this long; when all are used the message is `failed`.
RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
)


@dataclass(frozen=True)
class MailOutboxDepth:
    queued: int
    oldest_queued_seconds: float
    failed: int


@dataclass(frozen=True)
class MailReceipt:
    """What became of a message: delivered now, or recorded in the outbox and retried."""

    message_id: int | None
    delivered: bool

    @property
    def queued(self) -> bool:
        return not self.delivered


@dataclass(frozen=True)
class MailMessageView:
    """A stored message as the operator sees it (never its secrets)."""

    id: int
    organisation_id: int | None
    to: str
    subject: str
    status: str
    attempts: int
    last_error: str
    has_secrets: bool
    created_at: datetime
    sent_at: datetime | None


def _message_view(row: MailMessage) -> MailMessageView:
    return MailMessageView(
        id=row.id,
        organisation_id=row.organisation_id,
        to=row.to_address,
        subject=row.subject,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        has_secrets=bool(row.secrets),
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


def _mail_of(row: MailMessage, box: SecretBox) -> Mail:
    """The stored message with its secrets opened (`SecretUnreadable` if sealed under another key)."""
    secrets = {name: SecretStr(box.open(str(value))) for name, value in (row.secrets or {}).items()}
    return Mail(to=row.to_address, subject=row.subject, body=row.body_text, secrets=secrets, html=row.body_html)


class Mailer:
    """Sends e-mail. With `sessions` and `jobs` (as built by the app) every message is first recorded
    in the outbox table `mail_messages`; a failed send stays queued and the durable job `mail.deliver`
    tries again after `retry_delays`; when they are used up the operator gets a `mail_undeliverable`
    alert and the message (secrets kept) waits for `cspbot mail retry <id>`. Stored secrets are sealed
    with `box` and removed once delivered. Without them (`durable=False`) a failed send raises
    `MailNotDelivered`."""

    def __init__(
        self,
        transport: MailTransport,
        *,
        sender: str,
        alerts: AlertService,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        jobs: JobService | None = None,
        box: SecretBox | None = None,
        retry_delays: Sequence[timedelta] = RETRY_DELAYS,
    ) -> None:
        if sessions is not None and box is None:
            raise ValueError("a mailer that stores messages needs a SecretBox to seal their secrets")
        self._box = box
        self._transport = transport
        self._sender = sender
        self._alerts = alerts
        self._sessions = sessions
        self._jobs = jobs
        self.retry_delays = tuple(retry_delays)
        if jobs is not None:
            jobs.register(MAIL_JOB, self._run_job)

    @property
    def durable(self) -> bool:
        return self._sessions is not None and self._jobs is not None

    def _message(self, mail: Mail, sent_at: datetime | None) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Date"] = format_datetime(sent_at or utcnow())
        message["Message-ID"] = make_msgid(domain=self._sender.rsplit("@", 1)[-1] or "localhost")
        message.set_content(mail.render())
        if mail.html:
            message.add_alternative(mail.render_html(), subtype="html")
        return message

    async def _deliver(self, mail: Mail, sent_at: datetime | None = None) -> str | None:
        """Hand over once; the error class name when it failed (the error text is never kept)."""
        try:
            where = await self._transport.deliver(self._message(mail, sent_at))
        except (OSError, smtplib.SMTPException) as error:
            log.warning("mail to %s (%r) not delivered: %s", mail.to, mail.subject, type(error).__name__)
            return type(error).__name__
        log.info("mail '%s' sent to %s via %s", mail.subject, mail.to, where)
        return None

    async def send(
        self,
        mail: Mail,
        *,
        organisation_id: int | None = None,
        sent_at: datetime | None = None,
        durable: bool = True,
    ) -> MailReceipt:
        """Deliver one message. Durable (the default when the outbox is set up): record it, try at
        once, and on failure leave it queued for retries (`receipt.queued`). Otherwise raise
        `MailNotDelivered` (after an operator alert) when it could not be handed over."""
        if not is_mail_address(mail.to):
            raise InvalidInput(_("{to!r} is not a valid e-mail address.", to=mail.to))
        if durable and self._sessions is not None and self._jobs is not None:
            return await self._send_durable(mail, organisation_id, sent_at)
        failure = await self._deliver(mail, sent_at)
        if failure is not None:
            await self._alerts.raise_alert(
                "mail_undeliverable",
                _(
                    "E-mail '{subject}' to {to} could not be delivered ({failure}). Check the SMTP settings; "
                    "the person did not get it.",
                    subject=mail.subject,
                    to=mail.to,
                    failure=failure,
                ),
                dedup_key=f"mail_undeliverable:{mail.to}:{mail.subject}",
                severity="error",
                organisation_id=organisation_id,
            )
            raise MailNotDelivered(
                _(
                    "The e-mail to {to} could not be sent. The reseller has been told; please try again later.",
                    to=mail.to,
                )
            )
        return MailReceipt(None, True)

    def _sealed(self, secret: SecretStr) -> str:
        assert self._box is not None
        return self._box.seal(secret.get_secret_value())

    async def _send_durable(self, mail: Mail, organisation_id: int | None, sent_at: datetime | None) -> MailReceipt:
        assert self._sessions is not None
        async with self._sessions() as session:
            row = MailMessage(
                organisation_id=organisation_id,
                to_address=mail.to,
                subject=mail.subject,
                body_text=mail.body,
                body_html=mail.html,
                secrets={name: self._sealed(value) for name, value in mail.secrets.items()} or None,
                status=QUEUED,
                attempts=0,
                last_error="",
            )
            session.add(row)
            await session.commit()
            message_id = row.id
        delivered = await self._attempt(message_id, sent_at)
        return MailReceipt(message_id, delivered)

    async def _attempt(self, message_id: int, sent_at: datetime | None = None) -> bool:
        """One try of a stored message; on failure the next try is scheduled or the operator alerted."""
        assert self._sessions is not None and self._jobs is not None and self._box is not None
        async with self._sessions() as session:
            row = await session.get(MailMessage, message_id)
            if row is None or row.status == SENT:
                return row is not None
            try:
                mail = _mail_of(row, self._box)
            except SecretUnreadable:
                # No retry can help until the key it was sealed with is configured again.
                row.status, row.last_error = FAILED, SecretUnreadable.__name__
                to, subject, organisation_id = row.to_address, row.subject, row.organisation_id
                await session.commit()
                await self._alerts.raise_alert(
                    "mail_undeliverable",
                    _(
                        "E-mail #{message_id} '{subject}' to {to} holds a secret sealed with another key than "
                        "SECRETS_KEY now holds. Add that key to SECRETS_KEY (after the current one), then run "
                        "'cspbot mail retry {message_id}'; without it, issue the password again.",
                        message_id=message_id,
                        subject=subject,
                        to=to,
                    ),
                    dedup_key=f"mail_undeliverable:{message_id}",
                    severity="error",
                    organisation_id=organisation_id,
                )
                return False
        failure = await self._deliver(mail, sent_at)
        async with self._sessions() as session:
            row = await session.get(MailMessage, message_id)
            if row is None:
                return False
            row.attempts += 1
            if failure is None:
                row.status, row.secrets, row.last_error, row.sent_at = SENT, None, "", utcnow()
                await session.commit()
                return True
            row.last_error = failure
            attempts, organisation_id = row.attempts, row.organisation_id
            exhausted = attempts > len(self.retry_delays)
            if exhausted:
                row.status = FAILED
            await session.commit()
        if exhausted:
            await self._alerts.raise_alert(
                "mail_undeliverable",
                _(
                    "E-mail #{message_id} '{subject}' to {to} could not be delivered after {attempts} tries "
                    "({failure}). It is kept: fix the mail settings, then run 'cspbot mail retry {message_id}'.",
                    message_id=message_id,
                    subject=mail.subject,
                    to=mail.to,
                    attempts=attempts,
                    failure=failure,
                ),
                dedup_key=f"mail_undeliverable:{message_id}",
                severity="error",
                organisation_id=organisation_id,
            )
        else:
            await self._jobs.submit(
                MAIL_JOB,
                idempotency_key=f"{MAIL_JOB}:{message_id}:{attempts}:{uuid.uuid4().hex[:8]}",
                payload={"message_id": message_id},
                organisation_id=organisation_id,
                requested_by="system:mail",
                run_after=utcnow() + self.retry_delays[attempts - 1],
                max_attempts=1,
            )
        return False

    async def _run_job(self, job: JobView) -> Mapping[str, Any]:
        message_id = int(job.payload["message_id"])
        delivered = await self._attempt(message_id)
        return {"message_id": message_id, "delivered": delivered}

    async def retry(self, message_id: int) -> MailReceipt:
        """The operator's retry of a failed (or still queued) message: tried at once, then on the
        usual schedule. Raises NotFound, or Conflict when it was delivered already."""
        if self._sessions is None or self._jobs is None:
            raise Conflict(_("Mail is not kept in an outbox here."))
        async with self._sessions() as session:
            row = await session.get(MailMessage, message_id)
            if row is None:
                raise NotFound(_("There is no e-mail #{message_id}.", message_id=message_id))
            if row.status == SENT:
                raise Conflict(_("E-mail #{message_id} was delivered already.", message_id=message_id))
            row.status, row.attempts = QUEUED, 0
            await session.commit()
        delivered = await self._attempt(message_id)
        async with self._sessions() as session:
            row = await session.get(MailMessage, message_id)
            if not delivered and row is not None and row.last_error == SecretUnreadable.__name__:
                raise SecretUnreadable(
                    _(
                        "E-mail #{message_id} holds a secret sealed with another key than SECRETS_KEY holds. Add "
                        "that key after the current one and retry, or issue the password again.",
                        message_id=message_id,
                    )
                )
        return MailReceipt(message_id, delivered)

    async def outbox_depth(self) -> MailOutboxDepth:
        """For monitoring (/metrics): messages waiting to be delivered, the oldest one's age, and those
        given up on (they wait for `cspbot mail retry`). All zero when mail is not kept in an outbox."""
        if self._sessions is None:
            return MailOutboxDepth(0, 0.0, 0)
        now = utcnow()
        async with self._sessions() as session:
            queued, oldest = (
                await session.execute(
                    select(func.count(), func.min(MailMessage.created_at)).where(MailMessage.status == QUEUED)
                )
            ).one()
            failed = await session.scalar(
                select(func.count()).select_from(MailMessage).where(MailMessage.status == FAILED)
            )
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        return MailOutboxDepth(int(queued or 0), max(0.0, age), int(failed or 0))

    async def messages(self, *, status: str | None = None, limit: int = 50) -> list[MailMessageView]:
        """The newest stored messages (optionally of one status), without their secrets."""
        if self._sessions is None:
            return []
        async with self._sessions() as session:
            query = select(MailMessage).order_by(MailMessage.id.desc()).limit(limit)
            if status:
                query = query.where(MailMessage.status == status)
            return [_message_view(row) for row in await session.scalars(query)]
