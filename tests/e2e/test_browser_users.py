"""In the rendered Playground (headless Chromium), as the customer admin: the users list (read from
Microsoft on the first open, search, paging, one user), a new user (an error shown in place with the
values kept; the password only e-mailed), licences assigned to users picked from a long list and
removed again, and the organisation's directory: people the operator loaded with `cspbot directory
import` created in the tenant, tenant users exported to it; and, asked for in a team channel, the
list sent to the 1:1 chat. Every step is typing in the chat box or clicking a rendered card; any page
error from the card renderer fails the test.

The Playground has no way to hand the bot a file for the directory (and the bot takes none): the
operator loads it from a CSV with `cspbot directory import`, which these tests run in-process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from cli.main import main as cli_main
from services.container import Services
from tests.conftest import link_demo_customer, outbox_messages
from tests.e2e.browser import Browser, Chromium
from tests.e2e.playground import E2E_DATABASE, SharedPlayground, bot_in_playground
from tests.e2e.sandbox_admin import sandbox_admin
from tests.users_support import BASIC, buy_licences

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

DOMAIN = "contosodemo.onmicrosoft.com"
PEOPLE = 21  # created in Microsoft's admin centre, besides the tenant's first admin: three pages of ten
LIST_SEARCH = "Search by name or user name"
PICKER_SEARCH = "Search users by name or user name"
TO_LICENSE = "Users to get the licence"


@dataclass
class Admin:
    browser: Browser
    services: Services
    outbox: Path
    folder: Path


@pytest_asyncio.fixture(loop_scope="session")
async def admin(
    session_playground: SharedPlayground, tmp_path: Path, request: pytest.FixtureRequest, chromium: Chromium
) -> AsyncIterator[Admin]:
    """Contoso with a Microsoft tenant of 22 users (never synced by the bot yet) and two Business
    Basic licences; Alex Wilber, its admin, in the Playground."""
    async with bot_in_playground(session_playground, tmp_path) as (playground, services, outbox):
        org = await link_demo_customer(services)
        await buy_licences(services, org, BASIC, 2)
        users = f"/customers/{org.partner_center_customer_id}/users"
        for index in range(PEOPLE):
            await sandbox_admin(
                services,
                "POST",
                users,
                {"userPrincipalName": f"user{index:02}@{DOMAIN}", "displayName": f"Person {index:02}"},
            )
        async with chromium.page(playground.base_url, request.node.name) as browser:
            await browser.wait_for_text("Welcome, Alex Wilber")  # the chat opened: the bot greets first
            yield Admin(browser, services, outbox, tmp_path)


def _passwords(outbox: Path) -> list[str]:
    return [mail.get_content().split("password: ")[1].split()[0] for mail in outbox_messages(outbox)]


async def _nowhere_in_the_chat(browser: Browser, secrets: list[str]) -> None:
    shown = " ".join(message["text"] for message in await browser.messages())
    assert secrets and not [secret for secret in secrets if secret in shown]


async def test_the_first_open_shows_the_tenant_then_search_paging_and_one_user(admin: Admin) -> None:
    browser = admin.browser
    # Never synced: the first answer already holds the tenant's users, read from Microsoft.
    await browser.send("users", expect="Person 00")
    text = await browser.card_text()
    assert "Synced with Microsoft just now." in text and f"Page 1 of 3 · {PEOPLE + 1} users" in text
    assert "No users" not in text
    await browser.screenshot("first-open")
    await browser.click("Next", expect="Page 2 of 3")
    await browser.click("Next", expect="Page 3 of 3")
    await browser.click("Previous", expect="Page 2 of 3")
    await browser.fill(LIST_SEARCH, "person 07")
    await browser.click("Search", expect="1 user matches 'person 07'.")
    assert "Person 08" not in await browser.card_text()
    await browser.click("Open Person 07", expect="This user has no licences.")
    assert f"user07@{DOMAIN}" in await browser.card_text()
    await browser.screenshot("one-user")
    await browser.click("Back to users", expect="Page 1 of 3")
    await browser.click("Refresh", expect="Refreshed from Microsoft.")
    await browser.click_in_place("More")
    await browser.click("Done", expect="Done with users")


async def test_a_new_user_is_corrected_in_place_created_and_the_password_only_mailed(admin: Admin) -> None:
    browser = admin.browser
    await browser.send("new user", expect="Create user")
    # Leaving the empty form works: its required fields do not hold the Back button.
    await browser.click("Back to users", expect="Users of your Microsoft tenant")
    await browser.click("New user", expect="Create user")
    await browser.fill("First name", "Kim")
    await browser.fill("Last name", "Lee")
    await browser.fill("User name", "kim lee")
    await browser.fill("E-mail the generated password to", "kim@example.com")
    await browser.click("Create user", expect="The user name may use letters, digits")
    kept = {field["value"] for field in await browser.inputs()}  # the usage location: its drop-down shows the name
    assert {"Kim", "Lee", "kim lee", "kim@example.com", "United States"} <= kept, kept
    forms = [m for m in await browser.messages() if "E-mail the generated password to" in m["text"]]
    assert len(forms) == 1, "the form shown again replaces the first copy"
    await browser.screenshot("form-error")
    await browser.fill("User name", "kim.lee")
    answer = await browser.click("Create user", expect="User created")
    assert any(
        f"Kim Lee was created as kim.lee@{DOMAIN}. The password was e-mailed to kim@example.com" in m["text"]
        for m in answer
    )
    await browser.screenshot("created")
    assert [mail["To"] for mail in outbox_messages(admin.outbox)] == ["kim@example.com"]
    await _nowhere_in_the_chat(browser, _passwords(admin.outbox))
    await browser.click("Assign a licence", expect=TO_LICENSE)
    ticked = [choice["title"] for choice in await browser.choices(TO_LICENSE) if choice["checked"]]
    assert ticked == [f"Kim Lee (kim.lee@{DOMAIN}) — 0 licences"]
    await browser.click("Back to users", expect="Kim Lee")


async def test_licences_are_assigned_to_users_picked_from_a_long_list_and_removed(admin: Admin) -> None:
    browser = admin.browser
    await browser.send("users", expect="Person 00")
    await browser.click("Assign licences", expect=TO_LICENSE)
    text = await browser.card_text()
    assert f"{PEOPLE + 1} users: the first 15 are listed; search by name to find the others." in text
    assert "Microsoft 365 Business Basic — 2 available of 2 (0 assigned)" in text
    assert len(await browser.choices(TO_LICENSE)) == 15
    await browser.screenshot("assign")
    # Person 19 is not among the first fifteen: found by searching, and kept ticked across searches.
    await browser.fill(PICKER_SEARCH, "person 19")
    await browser.click("Search", expect="Person 19 (user19@")
    await browser.select(TO_LICENSE, "Person 19 (")
    await browser.fill(PICKER_SEARCH, "person 0")
    await browser.click("Search", expect="Person 03 (user03@")
    await browser.select(TO_LICENSE, "Person 03 (")
    await browser.select(TO_LICENSE, "Person 04 (")
    await browser.select("Licence product", "Microsoft 365 Business Basic")
    await browser.click("Assign", expect="only 2 of 2 are available")
    ticked = [choice["title"] for choice in await browser.choices(TO_LICENSE) if choice["checked"]]
    assert [title.split(" (")[0] for title in ticked] == ["Person 03", "Person 04", "Person 19"]
    await browser.screenshot("too-many")
    await browser.untick(TO_LICENSE, "Person 04 (")
    # Users created elsewhere without a usage location: Microsoft needs one before a licence.
    await browser.click("Assign", expect="Person 03, Person 19 have no usage location")
    await browser.select("Usage location for users who have none", "United Kingdom")
    answer = await browser.click("Assign", expect="Licences assigned")
    outcome = next(m["text"] for m in answer if "Licences assigned" in m["text"])
    assert "✔ Person 03: assigned" in outcome and "✔ Person 19: assigned" in outcome
    assert "Available\n\n0\n\nAssigned\n\n2\n\nTotal\n\n2" in outcome
    await browser.screenshot("assigned")
    await browser.click("Assign more", expect="Microsoft 365 Business Basic — 0 available of 2 (2 assigned)")

    await browser.click("Back to users", expect="Users of your Microsoft tenant")
    await browser.fill(LIST_SEARCH, "person 19")
    await browser.click("Search", expect="1 licence · active")
    await browser.click("Open Person 19", expect="Licences to remove")
    assert "Microsoft 365 Business Basic: 2 seats, active, 1-year commitment, billed monthly" in (
        await browser.card_text()
    )
    await browser.screenshot("user-with-licence")
    await browser.select("Licences to remove", "Microsoft 365 Business Basic")
    await browser.click("Remove selected licences", expect="Licences removed.")
    assert "This user has no licences." in await browser.card_text()
    assert "Microsoft 365 Business Basic: 1 available, 1 assigned of 2." in await browser.card_text()
    await browser.click("Assign a licence", expect="1 available of 2 (1 assigned)")
    ticked = [choice["title"] for choice in await browser.choices(TO_LICENSE) if choice["checked"]]
    assert ticked == [f"Person 19 (user19@{DOMAIN}) — 0 licences"]


async def _operator_loads(admin: Admin, csv: str) -> None:
    """`cspbot directory import contoso people.csv`, run by the operator while the bot runs (the CLI's
    `main` on a thread of its own, in the operator's environment: the bot's database, no Partner Center
    or SMTP settings, the folder as working directory)."""
    people = admin.folder / "people.csv"
    people.write_text(csv, encoding="utf-8")
    code, out, err = await asyncio.to_thread(_cspbot, ["directory", "import", "contoso", str(people)], admin.folder)
    assert code == 0, err
    assert "18 added, 0 updated" in out


def _cspbot(argv: list[str], folder: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        for key in list(os.environ):
            if key.startswith(("PARTNER_CENTER_", "SMTP_")):
                patch.delenv(key)
        patch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{folder / E2E_DATABASE}")
        patch.setenv("SEED_DEMO_ORGANISATION", "false")
        patch.setenv("MICROSOFT_APP_ID", "")
        patch.setenv("LOG_LEVEL", "WARNING")
        patch.chdir(folder)  # settings read `.env` from the working directory
        code = cli_main(argv)
    return code, out.getvalue(), err.getvalue()


async def test_directory_people_are_imported_and_tenant_users_exported(admin: Admin) -> None:
    browser = admin.browser
    await _operator_loads(
        admin, "email,first_name,last_name\n" + "".join(f"pat{i:02}@example.com,Pat{i:02},Doe\n" for i in range(18))
    )
    await browser.send("users", expect="Person 00")
    await browser.click_in_place("More")
    await browser.click("User directory", expect="18 people in the directory; 18 not yet in the Microsoft tenant.")
    assert "18 people: the first 15 are listed; search by name to find the others." in await browser.card_text()
    await browser.screenshot("directory")
    await browser.click("Import selected people", expect="Select at least one person.")

    await browser.fill("Search the directory by name or e-mail", "pat17")
    await browser.click("Search", expect="Pat17 Doe (pat17@example.com)")
    await browser.select("People to create in the tenant (each gets a generated password by e-mail)", "Pat17 Doe")
    await browser.fill("E-mail the passwords to (empty: each person's own address)", "it@example.com")
    answer = await browser.click("Import selected people", expect="Imported into the tenant")
    assert any(f"✔ Pat17 Doe: created as pat17@{DOMAIN}; password sent to it@example.com" in m["text"] for m in answer)
    await browser.screenshot("imported")

    await browser.click("User directory", expect="17 not yet in the Microsoft tenant.")
    await browser.fill(PICKER_SEARCH, "person 05")
    await browser.click("Search", expect="Person 05 (user05@")
    await browser.select("Tenant users to add to the directory", "Person 05 (")
    await browser.fill("E-mail the directory passwords to (empty: each user's own address)", "not-mail")
    await browser.click("Export selected users", expect="Enter a valid e-mail address for the passwords")
    assert [c["checked"] for c in await browser.choices("Tenant users to add to the directory")] == [True]
    await browser.fill("E-mail the directory passwords to (empty: each user's own address)", "it@example.com")
    answer = await browser.click("Export selected users", expect="Exported to the directory")
    await browser.screenshot("exported")
    assert [mail["To"] for mail in outbox_messages(admin.outbox)] == ["it@example.com", "it@example.com"]
    await _nowhere_in_the_chat(browser, _passwords(admin.outbox))
    listed = await admin.services.directory.entries_of("contoso")
    assert {entry.email for entry in listed if entry.has_password} == {f"user05@{DOMAIN}"}
    await browser.click("Back to users", expect="Users of your Microsoft tenant")


async def test_asked_in_a_channel_the_list_comes_to_the_personal_chat(admin: Admin) -> None:
    """User data is private: asked for in a team channel, the list goes to Alex's 1:1 chat."""
    browser = admin.browser
    await browser.open_chat("General")
    post = await browser.post_mentioning("Test Bot", "users", expect="I have sent that to you in our 1:1 chat.")
    assert "Alex Wilber" in post["text"] and "Test Bot users" in post["text"]  # Alex's post, answered in its thread
    assert not [m for m in await browser.messages() if "user00@" in m["text"]]
    await browser.open_chat("Personal Chat")
    private = await browser.wait_for_text("Open the users list here")
    assert f"user00@{DOMAIN}" in private["text"] and "Next" not in private["text"]  # read-only here
    await browser.screenshot("sent-privately")
    await browser.click("Open the users list here", expect="Page 1 of 3")
    assert "Next" in await browser.buttons()
