"""Mail: the outbox and SMTP transports deliver the password; no log line, alert or error holds it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from services.alerts import AlertService
from services.errors import InvalidInput
from services.mail import Mail, Mailer, MailNotDelivered, OutboxTransport, SmtpTransport
from tests.conftest import outbox_messages
from tests.fakes import SmtpInbox, free_port

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


async def test_smtp_delivers_to_a_real_smtp_server(sqlite_services) -> None:
    handler = SmtpInbox()
    port = free_port()
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
    port = free_port()  # nobody listens on it
    alerts: AlertService = sqlite_services.alerts
    mailer = Mailer(SmtpTransport("127.0.0.1", port, timeout=2), sender="bot@reseller.example", alerts=alerts)
    with pytest.raises(MailNotDelivered) as failed:
        await mailer.send(CREDENTIALS, organisation_id=None)
    assert PASSWORD not in str(failed.value)
    [alert] = await alerts.list()
    assert alert.code == "mail_undeliverable" and PASSWORD not in alert.message
    assert PASSWORD not in caplog.text


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 / localhost, made for this test only."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_smtp_url_with_starttls_and_login_against_a_real_server(
    sqlite_services, tmp_path: Path, monkeypatch, caplog
) -> None:
    """MAIL_SMTP_URL as an operator writes it: the server insists on STARTTLS before AUTH, the
    mailer logs in with the URL's (encoded) user and password, the sender is MAIL_FROM, and neither
    the SMTP password nor the mailed one reaches a log line."""
    import ssl

    from aiosmtpd.smtp import AuthResult, LoginPassword

    from services.container import mail_transport
    from services.settings import Settings

    caplog.set_level(logging.DEBUG)
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[tuple[str, str]] = []

    def authenticate(_server, _session, _envelope, _mechanism, auth_data) -> AuthResult:  # type: ignore[no-untyped-def]
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        ok = (auth_data.login, auth_data.password) == (b"bot@reseller.example", b"s3cret:pw/1")
        return AuthResult(success=ok)

    handler = SmtpInbox()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this test's certificate only
    try:
        settings = Settings(
            mail_smtp_url=SecretStr(f"smtp://bot%40reseller.example:s3cret%3Apw%2F1@127.0.0.1:{port}"),
            mail_from="CSP self-service <bot@reseller.example>",
            smtp_host="ignored.example",
        )
        transport = mail_transport(settings)
        assert isinstance(transport, SmtpTransport)
        mailer = Mailer(transport, sender=settings.mail_from, alerts=sqlite_services.alerts)
        await mailer.send(CREDENTIALS)

    finally:
        controller.stop()
    assert logins == [("bot@reseller.example", "s3cret:pw/1")]
    [message] = handler.messages
    assert message["From"] == "CSP self-service <bot@reseller.example>"
    assert PASSWORD in message.get_payload(decode=True).decode()
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))  # not the server's
    assert "s3cret" not in ours and PASSWORD not in ours
    assert all("s3cret" not in alert.message for alert in await sqlite_services.alerts.list())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example", ("mail.example", 587, "", True, False)),
        ("smtps://u:p@mail.example", ("mail.example", 465, "u", False, True)),
        ("smtp://relay.local:25?starttls=false", ("relay.local", 25, "", False, False)),
    ],
)
def test_smtp_url_forms(url: str, expected: tuple) -> None:
    from services.mail import smtp_transport_from_url

    t = smtp_transport_from_url(url)
    assert (t._host, t._port, t._username, t._starttls, t._implicit_tls) == expected


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "smtp://user:s3cret@mail.example:99999"])
def test_a_bad_smtp_url_stops_start_up_without_repeating_it(url: str) -> None:
    from services.container import mail_transport
    from services.settings import Settings

    with pytest.raises(ValueError, match="MAIL_SMTP_URL") as raised:
        mail_transport(Settings(mail_smtp_url=SecretStr(url)))
    assert "s3cret" not in str(raised.value)
