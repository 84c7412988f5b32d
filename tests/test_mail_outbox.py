"""The mail outbox: a message the mail server refused stays queued, is retried by a durable job, is
delivered when the server is back (its secrets then removed), and alerts the operator when every try
failed — kept for `cspbot mail retry`. No log line, alert, error or job payload holds the secret."""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlalchemy import select

from services.errors import Conflict, NotFound
from services.jobs import JobService
from services.mail import MAIL_JOB, Mail, Mailer, MailTransport, OutboxTransport, SmtpTransport
from services.models import Job, MailMessage
from services.sealed_secrets import SecretBox, SecretUnreadable, generate_key
from tests.conftest import outbox_messages
from tests.fakes import SmtpInbox, free_port

PASSWORD = "Qz7!pLm3#Rw9"
MAIL = Mail(
    to="kim.lee@fabrikam.example",
    subject="Your new password",
    body="Password: {password}\n",
    html="<p>Password: {password}</p>",
    secrets={"password": SecretStr(PASSWORD)},
)


NO_WAIT = (timedelta(0), timedelta(0))


def _mailer(services, transport: MailTransport, box: SecretBox | None = None) -> tuple[Mailer, JobService]:
    """The app's mailer over `transport` (and `box`), retrying at once, with its own job runner over
    the same database: what a second replica with that mail server (and key) would run."""
    jobs = JobService(services.sessions, services.alerts)
    mailer = Mailer(
        transport,
        sender="csp-bot@contoso.example",
        alerts=services.alerts,
        sessions=services.sessions,
        jobs=jobs,
        box=box or services.secret_box,
        retry_delays=NO_WAIT,
    )
    return mailer, jobs


def _smtp_down(services) -> tuple[Mailer, JobService, int]:
    """A mailer whose SMTP port nobody listens on (yet); with its job runner and the port."""
    port = free_port()
    mailer, jobs = _mailer(services, SmtpTransport("127.0.0.1", port, starttls=False, timeout=2))
    return mailer, jobs, port


def _our_logs(caplog) -> str:
    """Our log lines: not the test SMTP server's debug log (it prints what it received) nor the SQLite
    driver's debug trace of statement parameters (it shows what is stored, the row's secrets included)."""
    foreign = ("mail.log", "aiosqlite")
    return "\n".join(record.getMessage() for record in caplog.records if not record.name.startswith(foreign))


async def _row(services, message_id: int) -> MailMessage:
    async with services.sessions() as session:
        row = await session.get(MailMessage, message_id)
        assert row is not None
        return row


def _sealed_password(services, row: MailMessage) -> None:
    """The row keeps the password sealed: not readable in the database, opened by the app's key."""
    assert row.secrets is not None
    stored = row.secrets["password"]
    assert stored.startswith("sealed:v1:") and PASSWORD not in stored
    assert services.secret_box.open(stored) == PASSWORD


def _tests_key() -> str:
    """The key the app sealed with in these tests: the key file conftest points SECRETS_KEY_FILE at."""
    return Path(os.environ["SECRETS_KEY_FILE"]).read_text().strip()


async def _job_payloads(services) -> list[str]:
    async with services.sessions() as session:
        jobs = list(await session.scalars(select(Job).where(Job.kind == MAIL_JOB)))
    return [json.dumps(job.payload) for job in jobs]


async def test_a_refused_message_is_queued_and_delivered_when_the_server_is_back(services, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    mailer, jobs, port = _smtp_down(services)
    receipt = await mailer.send(MAIL, organisation_id=None)
    assert receipt.queued and receipt.message_id is not None
    row = await _row(services, receipt.message_id)
    assert (row.status, row.attempts, row.last_error) == ("queued", 1, "ConnectionRefusedError")
    _sealed_password(services, row)  # kept until delivered
    assert row.body_text == "Password: {password}\n"  # the template, not the rendered text
    payloads = await _job_payloads(services)
    assert payloads and all(PASSWORD not in payload for payload in payloads)
    assert json.loads(payloads[0]) == {"message_id": receipt.message_id}
    assert await services.alerts.list() == []  # one failed try is not yet the operator's problem

    handler = SmtpInbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        await jobs.run_pending()
    finally:
        controller.stop()
    [message] = handler.messages
    assert message["To"] == MAIL.to and PASSWORD in message.as_string()
    row = await _row(services, receipt.message_id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")
    assert row.secrets is None and row.sent_at is not None
    assert await services.alerts.list() == []
    assert PASSWORD not in _our_logs(caplog)
    [view] = await mailer.messages()
    assert view.status == "sent" and not view.has_secrets


async def test_exhausted_retries_alert_the_operator_and_keep_the_message(services, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    mailer, jobs, port = _smtp_down(services)
    receipt = await mailer.send(MAIL)
    assert receipt.message_id is not None
    await jobs.run_pending()
    row = await _row(services, receipt.message_id)
    assert (row.status, row.attempts) == ("failed", 3)
    _sealed_password(services, row)  # never lost: kept for a later retry
    [alert] = await services.alerts.list()
    assert alert.code == "mail_undeliverable" and PASSWORD not in alert.message
    assert f"cspbot mail retry {receipt.message_id}" in alert.message
    assert [view.id for view in await mailer.messages(status="failed")] == [receipt.message_id]

    handler = SmtpInbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        retried = await mailer.retry(receipt.message_id)
    finally:
        controller.stop()
    assert retried.delivered and len(handler.messages) == 1
    row = await _row(services, receipt.message_id)
    assert row.status == "sent" and row.secrets is None
    with pytest.raises(Conflict):
        await mailer.retry(receipt.message_id)
    with pytest.raises(NotFound):
        await mailer.retry(999999)
    assert PASSWORD not in _our_logs(caplog)
    assert all(PASSWORD not in payload for payload in await _job_payloads(services))


@pytest.mark.usefixtures("outbox")
async def test_a_message_delivered_at_once_keeps_no_secret(services) -> None:
    receipt = await services.mailer.send(MAIL)
    assert receipt.delivered and receipt.message_id is not None
    row = await _row(services, receipt.message_id)
    assert (row.status, row.attempts, row.secrets) == ("sent", 1, None)
    assert await _job_payloads(services) == []


async def test_without_the_outbox_a_refused_message_still_raises(services) -> None:
    from services.mail import MailNotDelivered

    mailer, _jobs, _port = _smtp_down(services)
    with pytest.raises(MailNotDelivered) as failed:
        await mailer.send(MAIL, durable=False)
    assert PASSWORD not in str(failed.value)
    assert await mailer.messages() == []


async def test_a_secret_sealed_under_another_key_fails_with_an_alert_until_that_key_is_back(services, outbox) -> None:
    """E.g. SECRETS_KEY rotated with the old key dropped too soon: no retry can help, so the message fails
    at once and the operator is told what to do; with the old key added back it is delivered."""
    down, _jobs, _port = _smtp_down(services)
    receipt = await down.send(MAIL)
    assert receipt.queued and receipt.message_id is not None
    sealed_with = _tests_key()
    # The mail server is back, but the key it was sealed with is gone:
    mailer, jobs = _mailer(services, OutboxTransport(outbox), SecretBox([generate_key()]))

    await jobs.run_pending()  # the scheduled retry
    row = await _row(services, receipt.message_id)
    assert (row.status, row.last_error) == ("failed", "SecretUnreadable")
    _sealed_password(services, row)  # kept: nothing is lost
    [alert] = await services.alerts.list()
    assert alert.code == "mail_undeliverable" and "SECRETS_KEY" in alert.message
    assert f"cspbot mail retry {receipt.message_id}" in alert.message and PASSWORD not in alert.message
    assert outbox_messages(outbox) == []
    with pytest.raises(SecretUnreadable, match="SECRETS_KEY"):  # the operator's retry says why at once
        await mailer.retry(receipt.message_id)
    assert (await _row(services, receipt.message_id)).status == "failed"

    # A new key first, the old one after:
    mailer, _jobs = _mailer(services, OutboxTransport(outbox), SecretBox([generate_key(), sealed_with]))
    assert (await mailer.retry(receipt.message_id)).delivered
    [delivered] = outbox_messages(outbox)
    assert PASSWORD in delivered.get_body(preferencelist=("plain",)).get_content()


async def test_a_password_stored_before_sealing_existed_is_still_delivered(services, outbox) -> None:
    """An outbox row written by an earlier version holds its secret as plain text: an upgrade loses nothing."""
    async with services.sessions() as session:
        row = MailMessage(
            to_address=MAIL.to,
            subject=MAIL.subject,
            body_text=MAIL.body,
            secrets={"password": PASSWORD},
            status="failed",
            attempts=3,
            last_error="ConnectionRefusedError",
        )
        session.add(row)
        await session.commit()
        message_id = row.id
    assert (await services.mailer.retry(message_id)).delivered
    [delivered] = outbox_messages(outbox)
    assert PASSWORD in delivered.get_body(preferencelist=("plain",)).get_content()
    assert (await _row(services, message_id)).secrets is None
