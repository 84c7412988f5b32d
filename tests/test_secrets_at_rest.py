"""No password is stored in clear anywhere: after a new tenant and a new user, made through the real
HTTP endpoint on the embedded default (the bot starts its own Partner Center sandbox, which shares the
bot's PostgreSQL database or keeps a sibling SQLite file), every column of every table of both
databases — and, for SQLite, the raw bytes of the files — is searched for the passwords the e-mails
carried."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import column, inspect, select, table
from sqlalchemy.engine import make_url

from app import create_app
from services.db import create_engine
from services.seed import DEMO_SLUG
from services.settings import Settings
from tests.chat import Chat, button, inputs
from tests.conftest import outbox_messages, runtime_of
from tests.fakes import card_of, said

DOMAIN = "contosodemo.onmicrosoft.com"


def mailed_passwords(outbox: Path) -> list[str]:
    return [
        part.split()[0]
        for mail in outbox_messages(outbox)
        for part in str(mail.get_body(preferencelist=("plain",)).get_content()).split("assword: ")[1:]
    ]


def _text_of(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


async def cells_holding(database_url: str, secrets: list[str]) -> list[str]:
    """`table.column` of every stored value (any type, read back as text) that contains a secret."""
    engine = create_engine(database_url)
    found: list[str] = []
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            assert names, f"no tables in {database_url}"
            for name in names:
                columns = await connection.run_sync(lambda sync, name=name: inspect(sync).get_columns(name))
                query = select(*(column(c["name"]) for c in columns)).select_from(table(name))
                for row in (await connection.execute(query)).all():
                    for described, value in zip(columns, row, strict=True):
                        if value is not None and any(secret in _text_of(value) for secret in secrets):
                            found.append(f"{name}.{described['name']}")
    finally:
        await engine.dispose()
    return found


async def test_no_password_is_stored_in_clear_in_any_database(database_url, connector, aiohttp_client, outbox, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="aiosqlite")
    fake, url = connector
    settings = Settings(database_url=database_url, mail_outbox_dir=outbox, job_poll_interval_seconds=0.05)
    client = await aiohttp_client(create_app(settings))  # the embedded default: its own sandbox
    services = runtime_of(client).services
    chat = Chat(client, fake, url)

    start = await chat.card("add tenant")
    form = await chat.card(value=button(start, "Create a new tenant"))
    confirm = await chat.card(value={**inputs(form), **button(form, "Check and continue")})
    working, ready, _ = await chat.send(
        value={**inputs(confirm), **button(confirm, "Create the tenant"), "mca_accept": "true"}, replies=3
    )
    assert "Your Microsoft 365 tenant is ready" in said(ready)
    assert (await services.organisations.get(DEMO_SLUG)).partner_center_customer_id
    _, new_user = await chat.send("new user", replies=2)  # leaves "add subscription", which started by itself
    details = {
        "first_name": "Kim",
        "last_name": "Lee",
        "display_name": "Kim Lee",
        "user_name": "kim.lee",
        "domain": DOMAIN,
        "usage_location": "US",
        "password_email": "kim@example.com",
    }
    card = card_of(new_user)
    assert card is not None
    created = said((await chat.send(value={**inputs(card), **button(card, "Create user"), **details}))[0])
    assert "e-mailed to kim@example.com" in created

    passwords = mailed_passwords(outbox)
    assert len(passwords) == 2 and all(len(password) >= 12 for password in passwords)
    await client.close()  # the app's engines are disposed: SQLite's WAL is folded into the files

    sandbox_url = settings.sandbox_database_url
    databases = [database_url] if sandbox_url == database_url else [database_url, sandbox_url]
    for url_of_database in databases:
        assert await cells_holding(url_of_database, passwords) == [], url_of_database
    for url_of_database in databases:
        parsed = make_url(url_of_database)
        if parsed.get_backend_name() == "sqlite":
            for path in Path(str(parsed.database)).parent.glob(Path(str(parsed.database)).name + "*"):
                raw = path.read_bytes()
                assert not any(password.encode() in raw for password in passwords), path.name
    assert not any(password in caplog.text for password in passwords)
