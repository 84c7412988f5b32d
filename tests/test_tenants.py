"""TenantService against the sandbox, on SQLite and PostgreSQL: the form rules, Microsoft's checks,
exactly-once creation (double confirm, races, faults after commit), the MCA, the credentials mail
(outbox and a real SMTP server that is down at first), linking an existing tenant, roles and scope."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlalchemy import delete, select, update

from services.access import Caller
from services.container import Services, build_services
from services.db import create_engine, utcnow
from services.errors import Conflict, PermissionDenied
from services.jobs import FAILED, SUCCEEDED, JobView
from services.mail import Mail
from services.models import AuditEntry, Job, TenantServiceRow
from services.partner_center.client import MICROSOFT_CUSTOMER_AGREEMENT
from services.partner_center.models import Contact
from services.sealed_secrets import generate_key
from services.seed import DEMO_SLUG, seed_demo_organisation
from services.settings import Settings
from services.tenants import (
    ACTIVE,
    FormInvalid,
    MicrosoftContact,
    TenantForm,
    country_profile_of,
    prefix_problem,
    suggest_prefix,
    validate_form,
)
from tests.conftest import Sandbox, outbox_messages
from tests.fakes import SmtpInbox, free_port
from tests.mailparts import plain_text

GUID_TENANT = "6b2f1c7e-3d4a-4b5c-8d9e-0f1a2b3c4d5e"

GOOD_FORM = {
    "company_name": "Northwind Brews Ltd",
    "address_line1": "10 Downing Street",
    "city": "London",
    "postal_code": "SW1A 2AA",
    "country": "GB",
    "first_name": "Nancy",
    "last_name": "Davolio",
    "email": "Nancy.Davolio@northwindbrews.example",
    "phone": "+44 20 7946 0000",
    "culture": "en-GB",
    "language": "en",
    "domain_prefix": "northwindbrews",
}


async def _caller(services: Services, *, roles: frozenset[str] = frozenset({"admin"})) -> Caller:
    await seed_demo_organisation(services.organisations)
    org = await services.organisations.get(DEMO_SLUG)
    return Caller(org.members[0].id, org.id, org.name, org.members[0].email, "Alex Wilber", roles)


def _contact() -> MicrosoftContact:
    return MicrosoftContact("Nancy", "Davolio", "nancy.davolio@northwindbrews.example", utcnow())


async def _customers_with_domain(sandbox: Sandbox, domain: str) -> int:
    async with sandbox.session.get(
        f"{sandbox.url}/v1/customers", params={"size": "100"}, headers={"Authorization": f"Bearer {sandbox.token}"}
    ) as response:
        body = await response.json()
    return sum(1 for item in body["items"] if item["companyProfile"]["domain"] == domain)


async def _until_created_in_the_sandbox(sandbox: Sandbox, domain: str) -> None:
    """Until a slow call that the client gave up on has created the customer anyway; bounded (if it
    never does, the job's next attempt creates it)."""
    for _ in range(100):
        if await _customers_with_domain(sandbox, domain):
            return
        await asyncio.sleep(0.05)


async def _row(services: Services, organisation_id: int) -> TenantServiceRow | None:
    async with services.sessions() as session:
        return await session.scalar(select(TenantServiceRow).where(TenantServiceRow.organisation_id == organisation_id))


async def _make_due(services: Services) -> None:
    """The back-off of a retried job has passed (instead of waiting for it)."""
    async with services.sessions() as session:
        await session.execute(update(Job).values(run_after=utcnow() - timedelta(seconds=1)))
        await session.commit()


def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Everything at DEBUG, as `configure_logging("DEBUG")` would: aiosqlite stays at INFO there."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="aiosqlite")


# ---- the form's rules (Microsoft's country rules from the sandbox) ----------------------------------


async def _profile(sandbox: Sandbox, country: str):
    return country_profile_of(country, await sandbox.client.country_rules(country))


async def test_form_rules_by_country(sandbox: Sandbox) -> None:
    gb, us, hu, br = [await _profile(sandbox, c) for c in ("GB", "US", "HU", "BR")]
    form = TenantForm.from_mapping(GOOD_FORM)
    cleaned, errors = validate_form(form, gb)
    assert errors == {} and cleaned.email == "nancy.davolio@northwindbrews.example"

    _, errors = validate_form(TenantForm.from_mapping({**GOOD_FORM, "address_line1": "", "city": ""}), gb)
    assert set(errors) == {"address_line1", "city"}
    _, errors = validate_form(TenantForm.from_mapping({**GOOD_FORM, "postal_code": "12345"}), gb)
    assert "not a postal code of United Kingdom" in errors["postal_code"]
    # The US requires a state (and one of its states); a German form has none.
    us_form = {**GOOD_FORM, "country": "US", "postal_code": "98052", "culture": "en-US", "city": "Redmond"}
    _, errors = validate_form(TenantForm.from_mapping(us_form), us)
    assert "required in United States" in errors["state"]
    _, errors = validate_form(TenantForm.from_mapping({**us_form, "state": "XX"}), us)
    assert "not a state of United States" in errors["state"]
    cleaned, errors = validate_form(TenantForm.from_mapping({**us_form, "state": "wa"}), us)
    assert errors == {} and cleaned.state == "WA"
    # Hungary and Brazil need a registration number; Hungary a phone too; GB ignores one given.
    hu_form = {**GOOD_FORM, "country": "HU", "postal_code": "1051", "culture": "hu-HU", "language": "hu", "phone": ""}
    _, errors = validate_form(TenantForm.from_mapping(hu_form), hu)
    assert "registration number" in errors["registration_number"] and "requires one in Hungary" in errors["phone"]
    _, errors = validate_form(TenantForm.from_mapping({**hu_form, "registration_number": "12"}), hu)
    assert "format" in errors["registration_number"]
    assert br.registration_required
    cleaned, errors = validate_form(TenantForm.from_mapping({**GOOD_FORM, "registration_number": "123"}), gb)
    assert errors == {} and cleaned.registration_number == ""
    # Culture and language must be the country's.
    _, errors = validate_form(TenantForm.from_mapping({**GOOD_FORM, "culture": "ja-JP", "language": "xx"}), gb)
    assert set(errors) == {"culture", "language"}
    # E-mail and phone.
    _, errors = validate_form(TenantForm.from_mapping({**GOOD_FORM, "email": "nancy@", "phone": "call me"}), gb)
    assert set(errors) == {"email", "phone"}


async def test_phone_numbers_are_checked_and_written_for_the_chosen_country(sandbox: Sandbox) -> None:
    gb, us = [await _profile(sandbox, c) for c in ("GB", "US")]
    us_form = {**GOOD_FORM, "country": "US", "postal_code": "98052", "culture": "en-US", "state": "WA"}
    # Typed the national way, it is read as the country's and written internationally.
    cleaned, errors = validate_form(TenantForm.from_mapping({**GOOD_FORM, "phone": "020 7946 0000"}), gb)
    assert errors == {} and cleaned.phone == "+44 20 7946 0000"
    cleaned, errors = validate_form(TenantForm.from_mapping({**us_form, "phone": "(425) 555-0100"}), us)
    assert errors == {} and cleaned.phone == "+1 425-555-0100"
    # A British number's digits are no US number: refused next to the phone, as typed, the rest kept.
    cleaned, errors = validate_form(TenantForm.from_mapping({**us_form, "phone": "020 7946 0000"}), us)
    assert set(errors) == {"phone"} and "not a valid phone number for United States" in errors["phone"]
    assert "+1 201-555-0123" in errors["phone"]  # the country's example, to type it like
    assert cleaned.phone == "020 7946 0000" and cleaned.company_name == GOOD_FORM["company_name"]
    _, errors = validate_form(TenantForm.from_mapping({**GOOD_FORM, "phone": "+44 20 79"}), gb)
    assert "not a valid phone number for United Kingdom" in errors["phone"]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("contoso.onmicrosoft.com", "without dots"),
        ("contoso ltd", "spaces"),
        ("a" * 28, "at most 27 characters (this one has 28)"),
        ("1contoso", "start with a letter"),
        ("contoso_ltd", "letters (a-z) and digits"),
        ("", "Choose a domain prefix"),
    ],
)
def test_prefix_rules(prefix: str, expected: str) -> None:
    assert expected in (prefix_problem(prefix) or "")


def test_prefix_rules_accept_and_suggest() -> None:
    assert prefix_problem("a" * 27) is None and prefix_problem("Contoso2") is None
    assert suggest_prefix("123 Contoso Ltd.") == "contosoltd"
    assert len(suggest_prefix("A very long company name that never ends at all")) == 27


# ---- the service on both databases -----------------------------------------------------------------


async def test_prefilled_form_comes_from_the_profile_with_the_countrys_defaults(services: Services) -> None:
    caller = await _caller(services)
    await services.organisations.update(DEMO_SLUG, {"culture": "", "language": "xx"}, actor="tests")
    form, profile = await services.tenants.prefilled_form(caller)
    assert form.company_name == "Contoso Ltd" and form.city == "Redmond" and form.state == "WA"
    assert form.first_name == "Alex" and form.email == "alexw@example.com"
    assert form.domain_prefix == "contosodemo"
    assert profile is not None and profile.state_required
    assert (form.culture, form.language) == ("en-US", "en")


async def test_check_form_reports_every_field_and_sends_nothing(services: Services, sandbox: Sandbox) -> None:
    caller = await _caller(services)
    with pytest.raises(FormInvalid) as raised:
        await services.tenants.check_form(caller, {**GOOD_FORM, "postal_code": "nope", "domain_prefix": "1x"})
    assert set(raised.value.errors) == {"postal_code", "domain_prefix"}
    assert raised.value.form is not None and raised.value.form.company_name == GOOD_FORM["company_name"]
    with pytest.raises(FormInvalid) as raised:
        await services.tenants.check_form(caller, {**GOOD_FORM, "country": "ZZ"})
    assert "from the list" in raised.value.errors["country"]
    with pytest.raises(FormInvalid) as raised:  # a real country the rules resource does not know
        await services.tenants.check_form(caller, {**GOOD_FORM, "country": "FJ"})
    assert "Fiji" in raised.value.errors["country"]
    assert await _customers_with_domain(sandbox, "northwindbrews.onmicrosoft.com") == 0


async def test_domain_availability_and_a_free_alternative(services: Services) -> None:
    assert not await services.tenants.domain_available("contoso")
    assert await services.tenants.domain_available("northwindbrews")
    alternative = await services.tenants.free_alternative("contoso", "Contoso")
    assert alternative is not None and alternative.startswith("contoso")
    assert await services.tenants.domain_available(alternative)


async def test_address_validation_ok_suggestion_and_no_match(services: Services) -> None:
    tenants = services.tenants
    assert (await tenants.check_address(TenantForm.from_mapping(GOOD_FORM))).ok
    check = await tenants.check_address(TenantForm.from_mapping({**GOOD_FORM, "address_line1": "10 Downing St"}))
    assert not check.ok and check.suggestion is not None
    assert check.suggestion["address_line1"] == "10 Downing Street"
    check = await tenants.check_address(TenantForm.from_mapping({**GOOD_FORM, "postal_code": "00000"}))
    assert not check.ok and check.suggestion is None and "could not find" in check.message


async def test_create_tenant_exactly_once_with_mca_and_mailed_credentials(
    services: Services, sandbox: Sandbox, outbox, caplog
) -> None:
    _debug_logs(caplog)
    caller = await _caller(services)
    job, started = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    again, started_again = await services.tenants.start_creation(
        caller, GOOD_FORM, _contact(), notify_conversation_id=None
    )
    assert started and not started_again and again.id == job.id
    view = await services.tenants.my_service(caller)
    assert view is not None and view.status == "creating"

    assert await services.jobs.run_pending() == 1
    done = await services.jobs.get(job.id)
    assert done is not None and done.status == SUCCEEDED, done
    domain = "northwindbrews.onmicrosoft.com"
    assert await _customers_with_domain(sandbox, domain) == 1

    org = await services.organisations.get(DEMO_SLUG)
    view = await services.tenants.my_service(caller)
    assert view is not None and view.status == ACTIVE and view.origin == "created"
    assert org.partner_center_customer_id == view.customer_id
    assert view.admin_user == f"admin@{domain}" and view.mail_to == "n***@northwindbrews.example"
    assert view.mca_name == "Nancy Davolio" and view.mca_accepted_at is not None
    [agreement] = await sandbox.client.agreements(view.customer_id or "", agreement_type=MICROSOFT_CUSTOMER_AGREEMENT)
    assert agreement.primary_contact is not None and agreement.primary_contact.email == _contact().email

    [mail] = outbox_messages(outbox)
    assert mail["To"] == "nancy.davolio@northwindbrews.example"
    body = plain_text(mail)
    password = body.split("password:", 1)[1].split()[0]
    assert len(password) >= 8 and f"admin@{domain}" in body
    html_part = mail.get_body(preferencelist=("html",))
    assert html_part is not None and f"<code>{html.escape(password)}</code>" in html_part.get_content()
    row = await _row(services, org.id)
    assert row is not None and row.credentials_password is None and row.credentials_status == "sent"
    assert password not in str(done.result) and password not in caplog.text

    async with services.sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action).where(AuditEntry.organisation_id == org.id)))
        audited = " ".join(str(a) for a in await session.scalars(select(AuditEntry.after)))
    for action in ("tenant.create_requested", "tenant.create", "tenant.mca_attested", "tenant.credentials_sent"):
        assert action in actions
    assert password not in audited

    with pytest.raises(Conflict):
        await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    assert await services.jobs.run_pending() == 0
    assert await _customers_with_domain(sandbox, domain) == 1


async def test_concurrent_confirmations_create_one_tenant(services: Services, sandbox: Sandbox) -> None:
    caller = await _caller(services)
    results = await asyncio.gather(
        *(services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None) for _ in range(4))
    )
    assert len({job.id for job, _ in results}) == 1
    assert sum(started for _, started in results) == 1
    await services.jobs.run_pending()
    assert await _customers_with_domain(sandbox, "northwindbrews.onmicrosoft.com") == 1


@pytest.mark.parametrize("role", ["billing", "approver"])
async def test_only_admins_may_add_or_link_a_tenant(services: Services, role: str) -> None:
    billing = await _caller(services, roles=frozenset({role}))
    for call in (
        services.tenants.prefilled_form(billing),
        services.tenants.link_existing(billing),
        services.tenants.check_form(billing, GOOD_FORM),
        services.tenants.start_creation(billing, GOOD_FORM, _contact(), notify_conversation_id=None),
        services.tenants.attest_mca(billing, _contact()),
    ):
        with pytest.raises(PermissionDenied):
            await call
    assert await services.tenants.my_service(billing) is None  # reading is allowed


async def test_a_tenant_belongs_to_its_organisation_only(services: Services) -> None:
    caller = await _caller(services)
    await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    await services.jobs.run_pending()
    other = await services.organisations.create("fabrikam", {"name": "Fabrikam"}, actor="tests")
    stranger = Caller(999, other.id, other.name, "ann@fabrikam.example", "Ann", frozenset({"admin"}))
    assert await services.tenants.my_service(stranger) is None
    assert (await services.tenants.my_service(caller)) is not None


@pytest.mark.parametrize("fault", ["error_after_commit", "drop_after_commit"])
async def test_server_error_after_microsoft_committed_still_one_tenant(
    services: Services, sandbox: Sandbox, outbox, caplog, fault: str
) -> None:
    """The answer is lost (a 5xx, or the connection dropped) after the tenant exists: the client
    finds it by domain; the first admin gets a new password (Microsoft shows one only once),
    e-mailed, never logged."""
    _debug_logs(caplog)
    caller = await _caller(services)
    await sandbox.admin("POST", "/faults", {"kind": fault, "method": "POST", "path": "/v1/customers"})
    job, _ = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    await services.jobs.run_pending()
    done = await services.jobs.get(job.id)
    assert done is not None and done.status == SUCCEEDED, done
    assert await _customers_with_domain(sandbox, "northwindbrews.onmicrosoft.com") == 1
    assert "already gone through" in caplog.text  # found by its domain, not created twice
    [mail] = outbox_messages(outbox)
    password = plain_text(mail).split("password:", 1)[1].split()[0]
    assert password and password not in caplog.text


async def test_microsoft_not_answering_is_retried_without_a_second_tenant(services: Services, sandbox: Sandbox) -> None:
    caller = await _caller(services)
    await sandbox.admin(
        "POST", "/faults", {"kind": "error", "status": 503, "method": "POST", "path": "/v1/customers", "repeat": 100}
    )
    job, _ = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    await services.jobs.run_pending()
    pending = await services.jobs.get(job.id)
    assert pending is not None and pending.status == "pending" and pending.attempts == 1
    await sandbox.admin("DELETE", "/faults")
    await _make_due(services)
    await services.jobs.run_pending()
    done = await services.jobs.get(job.id)
    assert done is not None and done.status == SUCCEEDED, done
    assert await _customers_with_domain(sandbox, "northwindbrews.onmicrosoft.com") == 1


async def test_microsoft_not_answering_at_all_frees_the_request(services: Services, sandbox: Sandbox) -> None:
    caller = await _caller(services)
    await sandbox.admin(
        "POST", "/faults", {"kind": "error", "status": 503, "method": "POST", "path": "/v1/customers", "repeat": 1000}
    )
    job, _ = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    for _ in range(6):
        await _make_due(services)
        await services.jobs.run_pending()
    failed = await services.jobs.get(job.id)
    assert failed is not None and failed.status == FAILED
    assert "did not answer" in failed.error_message and "try again" in failed.error_message
    assert await services.tenants.my_service(caller) is None  # the admin may try again


@pytest.mark.usefixtures("sandbox")
async def test_microsoft_refusing_frees_the_request_with_its_reason(services: Services) -> None:
    """The domain was taken between the check and the confirmation: nothing created, retry allowed."""
    caller = await _caller(services)
    job, _ = await services.tenants.start_creation(
        caller, {**GOOD_FORM, "domain_prefix": "contoso"}, _contact(), notify_conversation_id=None
    )
    await services.jobs.run_pending()
    failed = await services.jobs.get(job.id)
    assert failed is not None and failed.status == FAILED
    assert "Nothing was created" in failed.error_message
    assert await services.tenants.my_service(caller) is None
    job, started = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    assert started
    await services.jobs.run_pending()
    assert (await services.jobs.get(job.id)).status == SUCCEEDED  # type: ignore[union-attr]


async def test_a_request_whose_job_failed_for_good_is_released(services: Services) -> None:
    caller = await _caller(services)
    job, _ = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    async with services.sessions() as session:  # e.g. an unexpected error on every attempt
        await session.execute(update(Job).where(Job.id == job.id).values(status=FAILED))
        await session.commit()
    assert await services.tenants.my_service(caller) is None
    again, started = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    assert started and again.payload["job_key"] != job.payload["job_key"]  # (SQLite may reuse the id)


async def test_link_existing_tenant_once_the_relationship_is_accepted(services: Services, sandbox: Sandbox) -> None:
    caller = await _caller(services)
    await services.organisations.link_teams_tenant(DEMO_SLUG, GUID_TENANT, actor="tests")
    assert await services.tenants.link_existing(caller) is None  # not accepted yet
    assert (await services.tenants.relationship_link()).startswith("http")
    await sandbox.admin(
        "POST",
        "/relationships/accept",
        {"tenantId": GUID_TENANT, "companyName": "Contoso Ltd", "domain": "contosoexisting.onmicrosoft.com"},
    )
    view = await services.tenants.link_existing(caller)
    assert view is not None and view.origin == "linked" and view.domain == "contosoexisting.onmicrosoft.com"
    assert (await services.organisations.get(DEMO_SLUG)).partner_center_customer_id == GUID_TENANT
    assert (await services.tenants.link_existing(caller)) == view  # idempotent
    async with services.sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions.count("tenant.link") == 1 and "organisation.partner_center_customer" in actions
    with pytest.raises(Conflict):
        await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)

    # Nothing can be bought before Microsoft has the MCA acceptance: recorded once, from here.
    assert not await services.tenants.mca_recorded(caller)
    view = await services.tenants.attest_mca(caller, _contact())
    assert view.mca_name == "Nancy Davolio" and view.mca_accepted_at is not None
    await services.tenants.attest_mca(caller, _contact())
    assert len(await sandbox.client.agreements(GUID_TENANT)) == 1


async def test_an_mca_accepted_elsewhere_shows_under_my_services(services: Services, sandbox: Sandbox) -> None:
    caller = await _caller(services)
    await services.organisations.link_teams_tenant(DEMO_SLUG, GUID_TENANT, actor="tests")
    await sandbox.admin(
        "POST",
        "/relationships/accept",
        {"tenantId": GUID_TENANT, "companyName": "Contoso Ltd", "domain": "contosoexisting.onmicrosoft.com"},
    )
    await services.tenants.link_existing(caller)
    await sandbox.client.accept_agreement(
        GUID_TENANT, Contact(first_name="Kim", last_name="Akers", email="kim@contoso.example")
    )
    assert await services.tenants.mca_recorded(caller)
    view = await services.tenants.my_service(caller)
    assert view is not None and view.mca_name == "Kim Akers" and view.mca_email == "kim@contoso.example"


@contextlib.asynccontextmanager
async def _tenant_created_while_smtp_is_down(
    sqlite_url: str, sandbox: Sandbox
) -> AsyncIterator[tuple[Services, Caller, JobView, int]]:
    """Services mailing over SMTP to a port nobody listens on (yet), and a tenant created through them:
    its sign-in e-mail is queued. Yields the services, the caller, the creation job and the SMTP port."""
    port = free_port()
    engine = create_engine(sqlite_url)
    settings = Settings(database_url=sqlite_url, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False)
    services = build_services(engine, settings, sandbox.client, sandbox.microsoft_clock)
    try:
        caller = await _caller(services)
        job, _ = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
        await services.jobs.run_pending()
        done = await services.jobs.get(job.id)
        assert done is not None
        yield services, caller, done, port
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("tmp_path")
async def test_mail_server_down_queues_the_credentials_and_delivers_them_later(
    sqlite_url: str, sandbox: Sandbox, caplog
) -> None:
    """A real SMTP server that is not there at first: the tenant is still created, the admin is told
    the e-mail is on its way, the retry delivers it and the stored password is then gone."""
    _debug_logs(caplog)
    async with _tenant_created_while_smtp_is_down(sqlite_url, sandbox) as (services, caller, done, port):
        assert done.status == SUCCEEDED
        assert done.result is not None and done.result["credentials_status"] == "queued"
        assert "on its way" in str(done.result["message"])
        row = await _row(services, caller.organisation_id)
        assert row is not None and row.credentials_password  # kept until delivered, sealed
        stored = row.credentials_password
        assert stored.startswith("sealed:v1:")
        assert any(alert.code == "mail_undeliverable" for alert in await services.alerts.list())

        inbox = SmtpInbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            await _make_due(services)
            await services.jobs.run_pending()
        finally:
            controller.stop()
        [message] = inbox.messages
        plain = next(part for part in message.walk() if part.get_content_type() == "text/plain")
        password = plain.get_payload(decode=True).decode().split("password:", 1)[1].split()[0]
        assert any(part.get_content_type() == "text/html" for part in message.walk())
        row = await _row(services, caller.organisation_id)
        assert row is not None and row.credentials_password is None and row.credentials_status == "sent"
        assert password not in caplog.text
        assert password not in stored and services.secret_box.open(stored) == password


def test_credentials_html_alternative_escapes_the_secret() -> None:
    mail = Mail(to="a@b.example", subject="s", body="pw {password}", html="<code>{password}</code>",
                secrets={"password": SecretStr("a<b&c")})  # fmt: skip
    assert mail.render() == "pw a<b&c" and mail.render_html() == "<code>a&lt;b&amp;c</code>"
    assert "{password}" in mail.html  # the template itself never holds the secret


async def test_agreement_refused_after_creation_still_mails_the_credentials(
    services: Services, sandbox: Sandbox, outbox
) -> None:
    """The tenant exists once Microsoft created it: if the MCA acceptance then cannot be recorded
    (Microsoft not answering through every try), the job still succeeds, the sign-in details are
    e-mailed, the admin is told to record the agreement, and "add tenant" can record it later."""
    caller = await _caller(services)
    await sandbox.admin(
        "POST",
        "/faults",
        {"kind": "error", "status": 503, "method": "POST", "path": "/v1/customers/*/agreements", "repeat": 10000},
    )
    job, _ = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    for _ in range(6):
        await _make_due(services)
        await services.jobs.run_pending()
    done = await services.jobs.get(job.id)
    assert done is not None and done.status == SUCCEEDED, done
    assert done.result is not None and "did not record the acceptance" in str(done.result["message"])
    assert done.result["mca_name"] == ""  # the ready card must not claim it was recorded
    assert done.attempts > 1  # retried while Microsoft did not answer
    assert len(outbox_messages(outbox)) == 1  # mailed once, on the first attempt, not once per retry
    view = await services.tenants.my_service(caller)
    assert view is not None and view.status == ACTIVE and view.mca_accepted_at is None
    async with services.sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert "tenant.mca_failed" in actions and "tenant.credentials_sent" in actions

    await sandbox.admin("DELETE", "/faults")
    assert not await services.tenants.mca_recorded(caller)
    view = await services.tenants.attest_mca(caller, _contact())
    assert view.mca_accepted_at is not None
    assert len(await sandbox.client.agreements(view.customer_id or "")) == 1


async def test_agreement_retried_after_a_short_outage_mails_once(services: Services, sandbox: Sandbox, outbox) -> None:
    caller = await _caller(services)
    await sandbox.admin(
        "POST",
        "/faults",
        {"kind": "error", "status": 503, "method": "POST", "path": "/v1/customers/*/agreements", "repeat": 100},
    )
    job, _ = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    await services.jobs.run_pending()
    pending = await services.jobs.get(job.id)
    assert pending is not None and pending.status == "pending"
    await sandbox.admin("DELETE", "/faults")
    await _make_due(services)
    await services.jobs.run_pending()
    done = await services.jobs.get(job.id)
    assert done is not None and done.status == SUCCEEDED and done.result is not None
    assert done.result["mca_name"] == "Nancy Davolio" and "did not record" not in str(done.result["message"])
    assert len(outbox_messages(outbox)) == 1


async def test_a_timeout_during_creation_leaves_one_tenant(sqlite_url: str, sandbox: Sandbox, outbox) -> None:
    """Microsoft takes longer than the client waits (the tenant may be committed after the client
    gave up): the client's retry and the job's re-run, both with the job's MS-RequestId, end with
    exactly one tenant, and the sign-in details still go out."""
    import aiohttp

    from services.partner_center import PartnerCenterClient, StaticTokenProvider

    async def no_wait(_: float) -> None:
        return None

    await sandbox.admin(
        "POST", "/faults", {"kind": "latency", "latencyMs": 1500, "method": "POST", "path": "/v1/customers"}
    )
    engine = create_engine(sqlite_url)
    async with aiohttp.ClientSession() as session:
        impatient = PartnerCenterClient(
            session,
            base_url=sandbox.url,
            price_sheet_url=sandbox.url,
            tokens=StaticTokenProvider(sandbox.token),
            sleep=no_wait,
            request_timeout=0.5,
        )
        services = build_services(
            engine, Settings(database_url=sqlite_url, mail_outbox_dir=outbox), impatient, sandbox.microsoft_clock
        )
        try:
            caller = await _caller(services)
            job, _ = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
            for _ in range(5):
                await services.jobs.run_pending()
                done = await services.jobs.get(job.id)
                if done is not None and done.finished:
                    break
                await _until_created_in_the_sandbox(sandbox, "northwindbrews.onmicrosoft.com")
                await _make_due(services)
            assert done is not None and done.status == SUCCEEDED, done
        finally:
            await engine.dispose()
    assert await _customers_with_domain(sandbox, "northwindbrews.onmicrosoft.com") == 1
    assert len(outbox_messages(outbox)) == 1


async def test_a_claim_whose_job_was_never_stored_is_released_after_a_while(services: Services) -> None:
    """The process stopped between claiming the tenant and storing its job: not "being created" for
    ever. A fresh claim (its job a moment away) is left alone."""
    caller = await _caller(services)
    job, _ = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    async with services.sessions() as session:
        await session.execute(delete(Job).where(Job.id == job.id))
        await session.commit()
    view = await services.tenants.my_service(caller)
    assert view is not None and view.status == "creating"  # just claimed: its job may still come
    async with services.sessions() as session:
        await session.execute(update(TenantServiceRow).values(requested_at=utcnow() - timedelta(minutes=11)))
        await session.commit()
    assert await services.tenants.my_service(caller) is None
    again, started = await services.tenants.start_creation(caller, GOOD_FORM, _contact(), notify_conversation_id=None)
    assert started and again.payload["job_key"] != job.payload["job_key"]  # (SQLite may reuse the id)


async def test_credentials_sealed_under_a_key_since_removed_alert_the_operator_and_wait_for_it(
    sqlite_url: str, sandbox: Sandbox, outbox, caplog
) -> None:
    """SECRETS_KEY changed while the sign-in e-mail waited for the mail server: the retry cannot open
    the password, so the admin is told the reseller will send it, the operator is told how, and with the
    old key back the operator's resend delivers it."""
    _debug_logs(caplog)
    async with _tenant_created_while_smtp_is_down(sqlite_url, sandbox) as (services, caller, _, port):
        row = await _row(services, caller.organisation_id)
        assert row is not None and row.credentials_status == "queued"
        password = services.secret_box.open(row.credentials_password or "")
        # The bot restarts with SECRETS_KEY replaced and the old key dropped.
        replaced = build_services(
            services.engine,
            Settings(
                database_url=sqlite_url,
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_starttls=False,
                secrets_key=SecretStr(generate_key()),
            ),
            sandbox.client,
            sandbox.microsoft_clock,
        )

        await _make_due(replaced)
        await replaced.jobs.run_pending()
        async with replaced.sessions() as session:
            retry = await session.scalar(select(Job).where(Job.kind == "tenant.credentials_mail"))
        assert retry is not None and retry.status == FAILED
        assert "Your reseller has been told" in (retry.error_message or "")
        alert = next(a for a in await replaced.alerts.list() if "SECRETS_KEY" in a.message)
        assert f"cspbot tenant resend-credentials {DEMO_SLUG}" in alert.message
        row = await _row(replaced, caller.organisation_id)
        assert row is not None and row.credentials_password and row.credentials_status == "queued"  # kept

        # With the old key back (and a mail server that takes mail), the operator's resend delivers it.
        restored = build_services(
            services.engine, Settings(database_url=sqlite_url, mail_outbox_dir=outbox), sandbox.client
        )
        view = await restored.tenants.resend_credentials(caller.organisation_id, actor="operator")
        assert view.credentials_status == "sent"
        [message] = outbox_messages(outbox)
        assert password in plain_text(message)
        assert password not in caplog.text and password not in alert.message
