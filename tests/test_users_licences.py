"""New users (e-mailed password, exactly once, bad input) and licence assignment (pool numbers, our
check and Microsoft's 60012, bulk with per-user failures, forged ids, unassign), on both databases."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from services.errors import InvalidInput, NotFound, PermissionDenied
from services.models import AuditEntry, DirectoryUser, LicencePool, Organisation, TenantUser
from services.users.passwords import hash_password_sync, verify_password_sync
from services.users.service import NewUser
from tests.conftest import outbox_messages
from tests.users_support import BASIC, BASIC_LICENCE, STANDARD, admin_caller, buy_licences

DOMAIN = "contosodemo.onmicrosoft.com"


def _form(**changes):
    values = dict(
        first_name="Kim",
        last_name="Lee",
        display_name="Kim Lee",
        user_name="kim.lee",
        domain=DOMAIN,
        usage_location="us",
        password_email="kim.private@example.com",
    )
    values.update(changes)
    return NewUser(**values)


async def test_new_user_is_created_with_microsoft_and_the_password_only_mailed(
    services, demo_customer, sandbox, outbox, caplog
):
    caller = await admin_caller(services, demo_customer)
    with caplog.at_level(logging.DEBUG):
        created = await services.users.create_user(caller, _form(), request_key="card-1")
    assert created.user_principal_name == f"kim.lee@{DOMAIN}" and not created.mail_failed
    at_microsoft = await sandbox.client.get_user(demo_customer.partner_center_customer_id, created.user_id)
    assert at_microsoft.usage_location == "US" and at_microsoft.display_name == "Kim Lee"
    (mail,) = outbox_messages(outbox)
    assert mail["To"] == "kim.private@example.com"
    body = mail.get_content()
    password = body.split("Temporary password: ")[1].split()[0]
    assert len(password) >= 16
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith(("aiosqlite", "sqlalchemy"))]
    assert ours and not any(password in line for line in ours)
    async with services.sessions() as session:
        entries = [e for e in await session.scalars(select(AuditEntry)) if e.action == "tenant_user.create"]
        assert len(entries) == 1 and password not in str(entries[0].after)
    page = await services.users.list_users(caller)
    assert f"kim.lee@{DOMAIN}" in [row.user_principal_name for row in page.rows]  # available immediately

    again = await services.users.create_user(caller, _form(), request_key="card-1")  # double click
    assert again.already_done and again.user_id == created.user_id
    assert len(outbox_messages(outbox)) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"user_name": "kim lee"}, "user_name"),
        ({"domain": "fabrikam.com"}, "domain"),
        ({"usage_location": "XX"}, "usage_location"),
        ({"usage_location": "USA"}, "usage_location"),
        ({"password_email": "nope"}, "password_email"),
        ({"display_name": "", "first_name": "", "last_name": ""}, "display_name"),
    ],
)
async def test_new_user_bad_input_changes_nothing(
    sqlite_services, sqlite_demo_customer, sandbox, outbox, changes, field
):
    caller = await admin_caller(sqlite_services, sqlite_demo_customer)
    with pytest.raises(InvalidInput) as error:
        await sqlite_services.users.create_user(caller, _form(**changes), request_key="k")
    assert error.value.field == field
    users = [u async for u in sandbox.client.users(sqlite_demo_customer.partner_center_customer_id)]
    assert len(users) == 1 and outbox_messages(outbox) == []


async def test_duplicate_user_name_is_refused(services, demo_customer, sandbox, outbox):
    caller = await admin_caller(services, demo_customer)
    await services.users.create_user(caller, _form(), request_key="a")
    with pytest.raises(InvalidInput, match="already exists") as error:
        await services.users.create_user(caller, _form(password_email="x@example.com"), request_key="b")
    assert error.value.field == "user_name"
    # Created elsewhere and not yet synced: Microsoft's refusal is shown the same way.
    customer = demo_customer.partner_center_customer_id
    await sandbox.admin(
        "POST", f"/customers/{customer}/users", {"userPrincipalName": f"sam@{DOMAIN}", "displayName": "Sam"}
    )
    with pytest.raises(InvalidInput, match="already exists"):
        await services.users.create_user(caller, _form(user_name="sam"), request_key="c")
    # The same submit delivered again (before and after a sync): refused again, never taken for an
    # earlier success that would present the user created elsewhere as ours.
    with pytest.raises(InvalidInput, match="already exists"):
        await services.users.create_user(caller, _form(user_name="sam"), request_key="c")
    await services.user_sync.sync(demo_customer.id)
    with pytest.raises(InvalidInput, match="already exists"):
        await services.users.create_user(caller, _form(user_name="sam"), request_key="c")
    assert len(outbox_messages(outbox)) == 1


async def test_only_admins_create_users(sqlite_services, sqlite_demo_customer):
    approver = await admin_caller(sqlite_services, sqlite_demo_customer, roles=frozenset({"approver"}))
    with pytest.raises(PermissionDenied):
        await sqlite_services.users.create_user(approver, _form(), request_key="x")


async def _people(services, org, sandbox, count, *, location="US"):
    customer = org.partner_center_customer_id
    ids = []
    for index in range(count):
        body = {"userPrincipalName": f"p{index}@{DOMAIN}", "displayName": f"Person {index}"}
        if location:
            body["usageLocation"] = location
        ids.append((await sandbox.admin("POST", f"/customers/{customer}/users", body))["id"])
    await services.user_sync.sync_now(org.id)
    return ids


async def test_assign_shows_pool_numbers_and_refuses_beyond_available(services, demo_customer, sandbox):
    basic = await buy_licences(services, demo_customer, BASIC, 2)
    await buy_licences(services, demo_customer, BASIC, 1)  # a second subscription of the same product
    ids = await _people(services, demo_customer, sandbox, 4)
    caller = await admin_caller(services, demo_customer)
    (pool,) = await services.licences.pools(caller)
    assert (pool.licence_sku_id, pool.active, pool.consumed, pool.available) == (BASIC_LICENCE, 3, 0, 3)
    assert len(pool.subscriptions) == 2 and basic.id in [s.subscription_id for s in pool.subscriptions]
    with pytest.raises(InvalidInput, match="4 selected user.* only 3 of 3 are available"):
        await services.licences.assign(caller, ids, BASIC_LICENCE, request_key="r1")
    assert (await services.licences.pools(caller))[0].consumed == 0  # nothing reached Microsoft

    outcome = await services.licences.assign(caller, ids[:3], BASIC_LICENCE, request_key="r2")
    assert outcome.succeeded == 3 and outcome.pool is not None and outcome.pool.available == 0
    detail = await services.users.get_user(caller, ids[0])
    assert [(lic.name, len(lic.subscriptions)) for lic in detail.licences] == [(pool.name, 2)]
    page = await services.users.list_users(caller, search="Person 0")
    assert page.rows[0].licence_count == 1
    again = await services.licences.assign(caller, ids[:3], BASIC_LICENCE, request_key="r2")
    assert again.already_done

    removed = await services.licences.unassign(caller, ids[0], [BASIC_LICENCE], request_key="u1")
    assert removed.results[0].ok and removed.pool is not None and removed.pool.consumed == 2
    assert (await services.users.get_user(caller, ids[0])).licences == []


async def test_microsofts_60012_is_reported_per_user_and_the_rest_succeed(services, demo_customer, sandbox):
    await buy_licences(services, demo_customer, BASIC, 3)
    ids = await _people(services, demo_customer, sandbox, 4)
    caller = await admin_caller(services, demo_customer)
    await services.licences.pools(caller)  # the card showed 3 free
    # Meanwhile two licences are taken elsewhere (Microsoft 365 admin centre).
    customer = demo_customer.partner_center_customer_id
    for user_id in ids[2:]:
        await sandbox.admin("POST", f"/customers/{customer}/users/{user_id}/licenses", {"assign": [BASIC_LICENCE]})
    outcome = await services.licences.assign(caller, ids[:2], BASIC_LICENCE, request_key="r")
    assert [r.ok for r in outcome.results] == [True, False]
    assert "no free licences left" in outcome.results[1].message
    assert outcome.pool is not None and (outcome.pool.consumed, outcome.pool.available) == (3, 0)


async def test_bulk_assign_with_a_user_deleted_elsewhere_and_a_missing_usage_location(services, demo_customer, sandbox):
    await buy_licences(services, demo_customer, BASIC, 5)
    ids = await _people(services, demo_customer, sandbox, 3, location="")
    caller = await admin_caller(services, demo_customer)
    with pytest.raises(InvalidInput, match="no usage location") as error:
        await services.licences.assign(caller, ids, BASIC_LICENCE, request_key="r0")
    assert error.value.field == "usage_location"
    customer = demo_customer.partner_center_customer_id
    await sandbox.admin("DELETE", f"/customers/{customer}/users/{ids[1]}")
    outcome = await services.licences.assign(caller, ids, BASIC_LICENCE, request_key="r1", usage_location="gb")
    assert [r.ok for r in outcome.results] == [True, False, True]
    assert outcome.pool is not None and outcome.pool.consumed == 2
    user = await sandbox.client.get_user(customer, ids[0])
    assert user.usage_location == "GB"


async def test_forged_ids_from_another_organisation_change_nothing(services, demo_customer, sandbox):
    await buy_licences(services, demo_customer, BASIC, 2)
    ids = await _people(services, demo_customer, sandbox, 1)
    caller = await admin_caller(services, demo_customer)
    await services.licences.pools(caller)
    other = await services.organisations.create("fabrikam", {"name": "Fabrikam", "country": "US"}, actor="t")
    async with services.sessions.begin() as session:
        session.add(TenantUser(organisation_id=other.id, user_id="foreign-user", user_principal_name="x@fabrikam.com"))
    with pytest.raises(NotFound):
        await services.licences.assign(caller, [ids[0], "foreign-user"], BASIC_LICENCE, request_key="f1")
    with pytest.raises(NotFound):
        await services.licences.assign(caller, ids, "00000000-0000-0000-0000-000000000000", request_key="f2")
    async with services.sessions.begin() as session:  # another organisation's licence product, free units
        session.add(LicencePool(organisation_id=other.id, licence_sku_id="foreign-sku", name="F", active_units=9))
    with pytest.raises(NotFound):
        await services.licences.assign(caller, ids, "foreign-sku", request_key="f4")
    with pytest.raises(NotFound):
        await services.users.get_user(caller, "foreign-user")
    with pytest.raises(NotFound):
        await services.licences.unassign(caller, ids[0], [BASIC_LICENCE], request_key="f3")  # not held
    assert (await services.licences.pools(caller))[0].consumed == 0


async def test_two_products_keep_separate_pools(sqlite_services, sqlite_demo_customer, sandbox):
    services, org = sqlite_services, sqlite_demo_customer
    await buy_licences(services, org, BASIC, 1)
    await buy_licences(services, org, STANDARD, 1)
    ids = await _people(services, org, sandbox, 1)
    caller = await admin_caller(services, org)
    pools = await services.licences.pools(caller)
    assert len(pools) == 2
    standard = next(p for p in pools if p.licence_sku_id != BASIC_LICENCE)
    await services.licences.assign(caller, ids, standard.licence_sku_id, request_key="s")
    counts = {p.licence_sku_id: p.consumed for p in await services.licences.pools(caller)}
    assert counts == {BASIC_LICENCE: 0, standard.licence_sku_id: 1}


# --- directory -------------------------------------------------------------------------------------

CSV = """email,first_name,last_name,display_name,user_name,usage_location
ana@example.com,Ana,Silva,Ana Silva,ana.silva,PT
bo@example.com,Bo,Berg,,,
broken,,,,,
cy@example.com,Cy,,,,ZZ
"""


async def test_directory_csv_import_into_tenant_and_export_with_hashed_password(
    services, demo_customer, sandbox, outbox
):
    result = await services.directory.load_csv("contoso", CSV, actor="operator")
    assert (result.added, result.updated) == (2, 0) and len(result.errors) == 2
    assert "line 4" in result.errors[0] and "line 5" in result.errors[1]
    again = await services.directory.load_csv("contoso", CSV, actor="operator")
    assert (again.added, again.updated) == (0, 2)

    caller = await admin_caller(services, demo_customer)
    entries = await services.directory.entries(caller)
    assert [e.display_name for e in entries] == ["Ana Silva", "Bo Berg"]
    results = await services.directory.import_to_tenant(caller, [e.entry_id for e in entries], request_key="imp")
    assert all(r.ok for r in results), results
    tenant = {u.user_principal_name: u async for u in sandbox.client.users(demo_customer.partner_center_customer_id)}
    assert tenant[f"ana.silva@{DOMAIN}"].usage_location == "PT"
    assert tenant[f"bo@{DOMAIN}"].usage_location == "US"  # the organisation's country
    assert sorted(m["To"] for m in outbox_messages(outbox)) == ["ana@example.com", "bo@example.com"]
    repeat = await services.directory.import_to_tenant(caller, [entries[0].entry_id], request_key="imp2")
    assert repeat[0].message == "already in the tenant"
    # The address entered on the card gets the password instead of the person's own.
    await services.directory.load_csv("contoso", "email,first_name,last_name\ncy@example.com,Cy,Dahl\n", actor="op")
    cy = next(e for e in await services.directory.entries(caller) if e.email == "cy@example.com")
    with pytest.raises(InvalidInput) as bad:
        await services.directory.import_to_tenant(caller, [cy.entry_id], request_key="imp3", send_to="not-mail")
    assert bad.value.field == "import_send_to"
    with pytest.raises(InvalidInput, match="out of date"):
        await services.directory.import_to_tenant(caller, [cy.entry_id], request_key="")
    (sent,) = await services.directory.import_to_tenant(
        caller, [cy.entry_id], request_key="imp3", send_to="helpdesk@example.com"
    )
    assert sent.ok and "password sent to helpdesk@example.com" in sent.message
    assert outbox_messages(outbox)[-1]["To"] == "helpdesk@example.com"
    assert len(outbox_messages(outbox)) == 3

    await services.user_sync.sync_now(demo_customer.id)
    admin = next(
        r for r in (await services.users.list_users(caller)).rows if r.user_principal_name.startswith("admin@")
    )
    exported = await services.directory.export_from_tenant(
        caller, [admin.user_id], request_key="exp", send_to="it@example.com"
    )
    assert exported[0].ok
    mail = outbox_messages(outbox)[-1]
    assert mail["To"] == "it@example.com"
    password = mail.get_content().split("Directory password: ")[1].split()[0]
    async with services.sessions() as session:
        row = await session.scalar(select(DirectoryUser).where(DirectoryUser.email == admin.user_principal_name))
        assert row is not None and row.password_hash and password not in row.password_hash
        assert row.password_hash.startswith("scrypt$131072$8$1$")
    assert await services.directory.check_password(demo_customer.id, admin.user_principal_name, SecretStr(password))
    assert not await services.directory.check_password(demo_customer.id, admin.user_principal_name, SecretStr("wrong"))
    with pytest.raises(NotFound):
        await services.directory.import_to_tenant(caller, [999999], request_key="x")


def test_password_hash_round_trip_and_salting():
    first, second = hash_password_sync(SecretStr("Correct-Horse-9")), hash_password_sync(SecretStr("Correct-Horse-9"))
    assert first != second
    assert verify_password_sync(SecretStr("Correct-Horse-9"), first)
    assert not verify_password_sync(SecretStr("correct-horse-9"), first)
    assert not verify_password_sync(SecretStr("x"), "garbage")


async def test_undeliverable_password_mail_is_queued_and_delivered_later(sqlite_services, sqlite_demo_customer, outbox):
    outbox.parent.mkdir(parents=True, exist_ok=True)
    outbox.write_text("not a folder")  # the outbox transport cannot write: delivery fails
    sqlite_services.mailer.retry_delays = (timedelta(0),)
    caller = await admin_caller(sqlite_services, sqlite_demo_customer)
    created = await sqlite_services.users.create_user(caller, _form(), request_key="m")
    assert created.mail_queued and not created.mail_failed and created.user_id
    assert await sqlite_services.alerts.list(include_acknowledged=False) == []  # not yet: it is retried
    [queued] = await sqlite_services.mailer.messages()
    assert queued.status == "queued" and queued.has_secrets
    outbox.unlink()  # the mail transport works again
    await sqlite_services.jobs.run_pending()
    [mail] = outbox_messages(outbox)
    assert "Temporary password: " in mail.get_content()
    [sent] = await sqlite_services.mailer.messages()
    assert sent.status == "sent" and not sent.has_secrets


async def test_password_mail_that_keeps_failing_alerts_without_the_password(
    sqlite_services, sqlite_demo_customer, outbox
):
    outbox.parent.mkdir(parents=True, exist_ok=True)
    outbox.write_text("not a folder")
    sqlite_services.mailer.retry_delays = (timedelta(0),)
    caller = await admin_caller(sqlite_services, sqlite_demo_customer)
    created = await sqlite_services.users.create_user(caller, _form(), request_key="m")
    assert created.mail_queued
    await sqlite_services.jobs.run_pending()
    alerts = await sqlite_services.alerts.list(include_acknowledged=False)
    assert [alert.code for alert in alerts] == ["mail_undeliverable"]
    assert "Temporary password" not in alerts[0].message
    [failed] = await sqlite_services.mailer.messages()
    assert failed.status == "failed" and failed.has_secrets  # kept for 'cspbot mail retry'


async def test_licences_and_directory_are_admin_only(sqlite_services, sqlite_demo_customer):
    services, org = sqlite_services, sqlite_demo_customer
    billing = await admin_caller(services, org, roles=frozenset({"billing", "approver"}))
    with pytest.raises(PermissionDenied):
        await services.licences.pools(billing)
    with pytest.raises(PermissionDenied):
        await services.licences.assign(billing, ["x"], BASIC_LICENCE, request_key="k")
    with pytest.raises(PermissionDenied):
        await services.licences.unassign(billing, "x", [BASIC_LICENCE], request_key="k")
    with pytest.raises(PermissionDenied):
        await services.directory.entries(billing)
    with pytest.raises(PermissionDenied):
        await services.directory.import_to_tenant(billing, [1], request_key="k")
    with pytest.raises(PermissionDenied):
        await services.directory.export_from_tenant(billing, ["x"], request_key="k")


async def test_pool_counts_for_the_subscriptions_list(sqlite_services, sqlite_demo_customer, sandbox):
    services, org = sqlite_services, sqlite_demo_customer
    await buy_licences(services, org, BASIC, 2)
    ids = await _people(services, org, sandbox, 1)
    caller = await admin_caller(services, org)
    await services.licences.pools(caller)
    await services.licences.assign(caller, ids, BASIC_LICENCE, request_key="p")
    assert await services.licences.pool_counts(org.id) == {BASIC_LICENCE: (2, 1)}

    async def consumed_in_the_subscriptions_list() -> list[int | None]:
        page = await services.subscriptions.page(caller)
        return [item.consumed for item in page.items if item.licence_sku_id == BASIC_LICENCE]

    assert await consumed_in_the_subscriptions_list() == [1]  # at once, no sync in between
    await services.licences.unassign(caller, ids[0], [BASIC_LICENCE], request_key="q")
    assert await consumed_in_the_subscriptions_list() == [0]
    assert await services.licences.pool_counts(org.id) == {BASIC_LICENCE: (2, 0)}


@pytest.mark.usefixtures("outbox")
async def test_licence_and_directory_changes_are_audited(sqlite_services, sqlite_demo_customer, sandbox):
    services, org = sqlite_services, sqlite_demo_customer
    await buy_licences(services, org, BASIC, 1)
    ids = await _people(services, org, sandbox, 1)
    caller = await admin_caller(services, org)
    await services.licences.pools(caller)
    await services.licences.assign(caller, ids, BASIC_LICENCE, request_key="a")
    await services.licences.unassign(caller, ids[0], [BASIC_LICENCE], request_key="u")
    await services.directory.load_csv("contoso", "email,first_name,last_name\nana@example.com,Ana,Silva\n", actor="op")
    (entry,) = await services.directory.entries(caller)
    await services.directory.import_to_tenant(caller, [entry.entry_id], request_key="i")
    await services.directory.export_from_tenant(caller, ids, request_key="e", send_to="it@example.com")
    async with services.sessions() as session:
        entries = [
            (e.action, e.organisation_id) for e in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    actions = [action for action, organisation_id in entries if organisation_id == org.id]
    for action in ("licence.assign", "licence.unassign", "directory.load_csv", "tenant_user.create",
                   "directory.import", "directory.export"):  # fmt: skip
        assert action in actions, (action, actions)
    async with services.sessions() as session:
        assigned = await session.scalar(select(AuditEntry).where(AuditEntry.action == "licence.assign"))
        assert assigned is not None and assigned.after == {"licences": [BASIC_LICENCE], "usage_location": "US"}


async def test_new_user_form_defaults_to_the_organisations_country_and_the_tenant_domain(
    sqlite_services, sqlite_demo_customer
):
    async with sqlite_services.sessions.begin() as session:
        stored = await session.get(Organisation, sqlite_demo_customer.id)
        assert stored is not None
        stored.country = "GB"
    defaults = await sqlite_services.users.new_user_defaults(await admin_caller(sqlite_services, sqlite_demo_customer))
    assert (defaults.usage_location, defaults.domains) == ("GB", [DOMAIN])


async def test_opening_a_user_while_microsoft_is_unreachable_shows_the_copy(
    sqlite_services, sqlite_demo_customer, sandbox
):
    services, org = sqlite_services, sqlite_demo_customer
    await buy_licences(services, org, BASIC, 1)
    ids = await _people(services, org, sandbox, 1)
    caller = await admin_caller(services, org)
    await services.licences.pools(caller)
    await services.licences.assign(caller, ids, BASIC_LICENCE, request_key="a")
    await sandbox.admin(
        "POST",
        "/faults",
        {"kind": "error", "status": 503, "path": "/v1/customers/*/users/*/licenses", "repeat": 20},
    )
    detail = await services.users.get_user(caller, ids[0])
    assert [lic.licence_sku_id for lic in detail.licences] == [BASIC_LICENCE]  # the copy, not an error
    await sandbox.admin("DELETE", "/faults")


async def test_directory_password_is_queued_when_mail_is_down(sqlite_services, sqlite_demo_customer, outbox):
    services = sqlite_services
    outbox.parent.mkdir(parents=True, exist_ok=True)
    outbox.write_text("not a folder")
    services.mailer.retry_delays = (timedelta(0),)
    caller = await admin_caller(services, sqlite_demo_customer)
    await services.user_sync.sync_now(sqlite_demo_customer.id)
    admin = next(
        r for r in (await services.users.list_users(caller)).rows if r.user_principal_name.startswith("admin@")
    )
    (exported,) = await services.directory.export_from_tenant(
        caller, [admin.user_id], request_key="exp", send_to="it@example.com"
    )
    assert exported.ok and "password e-mail to it@example.com is queued" in exported.message
    outbox.unlink()
    await services.jobs.run_pending()
    [mail] = outbox_messages(outbox)
    assert mail["To"] == "it@example.com" and "Directory password: " in mail.get_content()
    [sent] = await services.mailer.messages()
    assert sent.status == "sent" and not sent.has_secrets
