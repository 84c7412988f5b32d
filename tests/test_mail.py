"""Mail: the outbox and SMTP transports deliver the password; no log line, alert or error holds it."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message
from pydantic import SecretStr

from services.alerts import AlertService
from services.errors import InvalidInput
from services.mail import Mail, Mailer, MailNotDelivered, OutboxTransport, SmtpTransport
from tests.conftest import outbox_messages

PASSWORD = "Xk9#mQ2!vTz7"
CREDENTIALS = Mail(
    to="ann.lee@fabrikam.example",
    subject="Your Microsoft 365 sign-in",
    body="User name: admin@fabrikam.onmicrosoft.com\nPassword: {password}\n",
    secrets={"password": SecretStr(PASSWORD)},
)


async def test_outbox_delivers_one_private_file_with_the_password(sqlite_services, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    folder = tmp_path / "mail"
    mailer = Mailer(OutboxTransport(folder), sender="bot@reseller.example", alerts=sqlite_services.alerts)
    await mailer.send(CREDENTIALS)
    [message] = outbox_messages(folder)
    assert message["To"] == "ann.lee@fabrikam.example"
    assert message["From"] == "bot@reseller.example"
    assert f"Password: {PASSWORD}" in message.get_content()
    [path] = folder.glob("*.eml")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert PASSWORD not in caplog.text
    assert "{password}" in CREDENTIALS.body  # the template itself never holds the secret


async def test_a_malformed_address_is_refused_before_anything_is_sent(sqlite_services, tmp_path: Path) -> None:
    mailer = Mailer(OutboxTransport(tmp_path / "mail"), sender="bot@reseller.example", alerts=sqlite_services.alerts)
    with pytest.raises(InvalidInput):
        await mailer.send(Mail(to="not-an-address", subject="x", body="y"))
    assert not (tmp_path / "mail").exists()


class _Collector(Message):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list = []

    def handle_message(self, message) -> None:  # type: ignore[override]
        self.messages.append(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_smtp_delivers_to_a_real_smtp_server(sqlite_services) -> None:
    handler = _Collector()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        transport = SmtpTransport("127.0.0.1", port, starttls=False)
        mailer = Mailer(transport, sender="bot@reseller.example", alerts=sqlite_services.alerts)
        await mailer.send(CREDENTIALS)
    finally:
        controller.stop()
    [message] = handler.messages
    assert message["To"] == "ann.lee@fabrikam.example"
    assert PASSWORD in message.get_payload(decode=True).decode()


async def test_undeliverable_mail_alerts_the_operator_without_the_password(sqlite_services, caplog) -> None:
    port = _free_port()  # nobody listens on it
    alerts: AlertService = sqlite_services.alerts
    mailer = Mailer(SmtpTransport("127.0.0.1", port, timeout=2), sender="bot@reseller.example", alerts=alerts)
    with pytest.raises(MailNotDelivered) as failed:
        await mailer.send(CREDENTIALS, organisation_id=None)
    assert PASSWORD not in str(failed.value)
    [alert] = await alerts.list()
    assert alert.code == "mail_undeliverable" and PASSWORD not in alert.message
    assert PASSWORD not in caplog.text
