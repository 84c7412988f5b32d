"""Cards of the users and licences tasks: the users list, one user, the new-user form, licence
assignment, the organisation's directory, and the outcome cards. Pure functions of view models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cards.base import Card, card, command_button, facts, heading, submit, text
from services import formatting

if TYPE_CHECKING:
    from services.users.directory import DirectoryEntry, EntryResult
    from services.users.licences import LicenceOutcome, PoolView
    from services.users.service import NewUserDefaults, UserDetail, UserRow, UsersPage

# Verbs (card submits) of these tasks.
USERS_PAGE = "users_page"
USERS_SEARCH = "users_search"
USERS_OPEN = "users_open"
USERS_REFRESH = "users_refresh"
USERS_LIST = "users_list"
USERS_NEW = "users_new"
USERS_CREATE = "users_create"
USERS_ASSIGN = "users_assign"
USERS_ASSIGN_DO = "users_assign_do"
USERS_UNASSIGN = "users_unassign"
USERS_DIRECTORY = "users_directory"
USERS_IMPORT = "users_import"
USERS_EXPORT = "users_export"
USERS_DONE = "users_done"

MAX_CHOICES = 100


def _search_row(placeholder: str, value: str, search: dict[str, Any]) -> dict[str, Any]:
    """A search box (`search`) with its Search button beside it."""
    box = {"type": "Input.Text", "id": "search", "placeholder": placeholder, "value": value, "maxLength": 100}
    return {
        "type": "ColumnSet",
        "columns": [
            {"type": "Column", "width": "stretch", "items": [box]},
            {"type": "Column", "width": "auto", "items": [{"type": "ActionSet", "actions": [search]}]},
        ],
    }


def freshness(synced_at: datetime | None, now: datetime, *, syncing: bool = False) -> str:
    """How fresh the copy is, in words."""
    if synced_at is None:
        return "Not synced with Microsoft yet - syncing now; use Refresh in a moment."
    minutes = int((now - synced_at).total_seconds() // 60)
    age = "just now" if minutes < 1 else f"{formatting.plural(minutes, 'minute', 'minutes')} ago"
    if minutes >= 120:
        age = f"{formatting.plural(minutes // 60, 'hour', 'hours')} ago"
    suffix = " - refreshing in the background." if syncing else "."
    return f"Synced with Microsoft {age}{suffix}"


def _error(message: str | None) -> list[dict[str, Any]]:
    return [text(message, color="Attention", weight="Bolder")] if message else []


def _notice(message: str) -> list[dict[str, Any]]:
    return [text(message, color="Good")] if message else []


def _user_line(row: UserRow) -> dict[str, Any]:
    licences = formatting.plural(row.licence_count, "licence", "licences")
    state = f" · {row.state}"
    return {
        "type": "Container",
        "separator": True,
        "selectAction": {
            "type": "Action.Submit",
            "title": "Open",
            "data": {"verb": USERS_OPEN, "user_id": row.user_id},
        },
        "items": [
            {
                "type": "ColumnSet",
                "columns": [
                    {
                        "type": "Column",
                        "width": "stretch",
                        "items": [
                            text(row.display_name or row.user_principal_name, weight="Bolder"),
                            {**text(row.user_principal_name, subtle=True), "spacing": "None"},
                        ],
                    },
                    {
                        "type": "Column",
                        "width": "auto",
                        "verticalContentAlignment": "Center",
                        "items": [text(f"{licences}{state}")],
                    },
                ],
            }
        ],
    }


def build_users_card(
    page: UsersPage, now: datetime, *, interactive: bool = True, notice: str = "", error: str | None = None
) -> Card:
    """The tenant's users (one page), with search, paging and freshness. Non-interactive (sent to the
    1:1 chat from a channel) it offers one button that opens the list there."""
    body: list[dict[str, Any]] = [
        heading("Users of your Microsoft tenant"),
        text(freshness(page.synced_at, now, syncing=page.syncing), subtle=True),
        *_notice(notice),
        *_error(error),
    ]
    if page.last_error:
        body.append(text(f"The last sync did not finish: {page.last_error}", color="Warning"))
    if interactive:
        body.append(_search_row("Search by name or user name", page.search, submit("Search", USERS_SEARCH)))
    if page.search:
        matching = formatting.plural(page.total, "user matches", "users match")
        body.append(text(f"{matching} '{page.search}'.", subtle=True))
    if not page.rows:
        body.append(text("No users to show." if page.search or page.synced_at else "No users in the copy yet."))
    for row in page.rows:
        line = _user_line(row)
        if not interactive:
            line.pop("selectAction")
        body.append(line)
    users = formatting.plural(page.total, "user", "users")
    body.append(text(f"Page {page.page} of {page.page_count} · {users}", subtle=True))
    if not interactive:
        return card(body, [submit("Open the users list here", "command", {"command": "users"})])
    actions: list[dict[str, Any]] = []
    if page.page > 1:
        actions.append(submit("Previous", USERS_PAGE, {"page": page.page - 1, "search_was": page.search}))
    if page.page < page.page_count:
        actions.append(submit("Next", USERS_PAGE, {"page": page.page + 1, "search_was": page.search}))
    actions += [
        submit("Refresh", USERS_REFRESH, {"page": page.page, "search_was": page.search}),
        submit("New user", USERS_NEW),
        submit("Assign licences", USERS_ASSIGN),
        {
            "type": "Action.ShowCard",
            "title": "More",
            "card": {
                "type": "AdaptiveCard",
                "body": [text("The organisation's own user directory: import people into the tenant, or export.")],
                "actions": [submit("User directory", USERS_DIRECTORY), submit("Done", USERS_DONE)],
            },
        },
    ]
    return card(body, actions)


def build_user_card(
    detail: UserDetail, now: datetime, request_key: str, *, notice: str = "", error: str | None = None
) -> Card:
    """One user: details, their licences with the subscriptions behind each, and removal."""
    body: list[dict[str, Any]] = [
        heading(detail.display_name or detail.user_principal_name),
        *_notice(notice),
        *_error(error),
        facts(
            [
                ("User name", detail.user_principal_name),
                ("First name", detail.first_name or "-"),
                ("Last name", detail.last_name or "-"),
                ("Usage location", detail.usage_location or "not set"),
                ("Status", detail.state),
                ("Licences", str(len(detail.licences))),
            ]
        ),
    ]
    if detail.licences_synced_at is not None:
        body.append(text(f"Licences read from Microsoft: {freshness(detail.licences_synced_at, now)}", subtle=True))
    if not detail.licences:
        body.append(text("This user has no licences."))
    for licence in detail.licences:
        body.append(text(licence.name, weight="Bolder"))
        if licence.subscriptions:
            lines = [
                f"- {sub.name} ({formatting.plural(sub.quantity, 'seat', 'seats')}, {sub.status}, "
                f"{sub.term_duration} billed {sub.billing_cycle})"
                for sub in licence.subscriptions
            ]
            body.append({**text("From the pooled subscriptions:\n" + "\n".join(lines), subtle=True), "spacing": "None"})
        else:
            body.append({**text("No subscription of ours feeds this licence.", subtle=True), "spacing": "None"})
    actions: list[dict[str, Any]] = []
    if detail.licences:
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": "licences",
                "label": "Licences to remove",
                "isMultiSelect": True,
                "style": "expanded",
                "choices": [{"title": lic.name, "value": lic.licence_sku_id} for lic in detail.licences],
            }
        )
        actions.append(
            submit("Remove selected licences", USERS_UNASSIGN, {"user_id": detail.user_id, "request_key": request_key})
        )
    actions += [
        submit("Assign a licence", USERS_ASSIGN, {"user_ids": [detail.user_id]}),
        # the one-line command: block sign-in, remove every licence, free the seats (asked once)
        command_button("Offboard…", f"offboard {detail.user_principal_name}"),
        submit("Back to users", USERS_LIST),
    ]
    return card(body, actions)


def build_new_user_card(
    defaults: NewUserDefaults,
    values: Mapping[str, str],
    request_key: str,
    *,
    error: str | None = None,
    error_field: str | None = None,
) -> Card:
    """The new-user form; on bad input the message is shown at the field and the values are kept."""

    def field_error(name: str) -> list[dict[str, Any]]:
        return _error(error) if error and error_field == name else []

    def text_input(name: str, label: str, *, required: bool = False, placeholder: str = "") -> list[dict[str, Any]]:
        block: dict[str, Any] = {
            "type": "Input.Text",
            "id": name,
            "label": label,
            "value": values.get(name, ""),
            "maxLength": 256,
        }
        if required:
            block["isRequired"] = True
            block["errorMessage"] = f"{label} is required."
        if placeholder:
            block["placeholder"] = placeholder
        return [*field_error(name), block]

    domains = defaults.domains or [""]
    body: list[dict[str, Any]] = [
        heading("New user"),
        text("The user is created in your Microsoft tenant at once."),
        *(_error(error) if error and error_field is None else []),
        *text_input("first_name", "First name"),
        *text_input("last_name", "Last name"),
        *text_input("display_name", "Display name", placeholder="e.g. Kim Lee (from first and last name if empty)"),
        *field_error("user_name"),
        *field_error("domain"),
        {
            "type": "ColumnSet",
            "columns": [
                {
                    "type": "Column",
                    "width": "stretch",
                    "items": [
                        {
                            "type": "Input.Text",
                            "id": "user_name",
                            "label": "User name",
                            "isRequired": True,
                            "errorMessage": "User name is required.",
                            "placeholder": "kim.lee",
                            "value": values.get("user_name", ""),
                            "maxLength": 64,
                        }
                    ],
                },
                {
                    "type": "Column",
                    "width": "auto",
                    "verticalContentAlignment": "Bottom",
                    "items": [text("@")],
                },
                {
                    "type": "Column",
                    "width": "stretch",
                    "items": [
                        {
                            "type": "Input.ChoiceSet",
                            "id": "domain",
                            "label": "Domain",
                            "value": values.get("domain") or domains[0],
                            "choices": [{"title": domain, "value": domain} for domain in domains],
                        }
                    ],
                },
            ],
        },
        *field_error("usage_location"),
        {
            "type": "Input.Text",
            "id": "usage_location",
            "label": "Usage location (two-letter country code)",
            "value": values.get("usage_location", defaults.usage_location),
            "maxLength": 2,
        },
        *field_error("password_email"),
        {
            "type": "Input.Text",
            "id": "password_email",
            "label": "E-mail the generated password to",
            "style": "Email",
            "isRequired": True,
            "errorMessage": "An e-mail address is required for the password.",
            "value": values.get("password_email", ""),
            "maxLength": 254,
        },
        text(
            "A strong password is generated and e-mailed to that address only - it is never shown here. "
            "The user must change it at first sign-in.",
            subtle=True,
        ),
    ]
    return card(
        body,
        [
            submit("Create user", USERS_CREATE, {"request_key": request_key}, style="positive"),
            submit("Back to users", USERS_LIST),
        ],
    )


def _pool_title(pool: PoolView) -> str:
    return f"{pool.name} - {pool.available} available of {pool.active} ({pool.consumed} assigned)"


def build_assign_card(
    users: Sequence[UserRow],
    pools: Sequence[PoolView],
    request_key: str,
    *,
    selected_users: Sequence[str] = (),
    selected_pool: str = "",
    usage_location: str = "",
    search: str = "",
    total_users: int = 0,
    error: str | None = None,
    error_field: str | None = None,
) -> Card:
    """Pick users (many), then a licence product; each product shows Microsoft's pool numbers with
    the subscriptions feeding it listed under it."""
    body: list[dict[str, Any]] = [heading("Assign licences"), *(_error(error) if error_field is None else [])]
    shown = list(users)[:MAX_CHOICES]
    body.append(text("1. Users", weight="Bolder"))
    if total_users > len(shown):
        body.append(text(f"Showing {len(shown)} of {total_users} users; search to narrow the list.", subtle=True))
    body.append(_search_row("Search users", search, submit("Search", USERS_ASSIGN, {"searching": True})))
    body += _error(error) if error_field == "users" else []
    body.append(
        {
            "type": "Input.ChoiceSet",
            "id": "user_ids",
            "label": "Users",
            "isMultiSelect": True,
            "value": ",".join(selected_users),
            "choices": [
                {
                    "title": f"{row.display_name} ({row.user_principal_name}) - "
                    f"{formatting.plural(row.licence_count, 'licence', 'licences')}",
                    "value": row.user_id,
                }
                for row in shown
            ],
        }
    )
    body.append(text("2. Licence product", weight="Bolder"))
    if not pools:
        body.append(text("Your organisation has no licences to assign yet. Buy a subscription first."))
    else:
        body += _error(error) if error_field == "licence" else []
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": "licence",
                "label": "Licence product",
                "style": "expanded",
                "value": selected_pool or pools[0].licence_sku_id,
                "choices": [{"title": _pool_title(pool), "value": pool.licence_sku_id} for pool in pools],
            }
        )
        for pool in pools:
            if pool.subscriptions:
                lines = [
                    f"- {sub.name}: {formatting.plural(sub.quantity, 'seat', 'seats')} ({sub.status})"
                    for sub in pool.subscriptions
                ]
                body.append(text(f"{pool.name} comes from:\n" + "\n".join(lines), subtle=True))
        body.append(
            text(
                "Microsoft pools licences per product: subscriptions of the same product share one count.",
                subtle=True,
            )
        )
    body += _error(error) if error_field == "usage_location" else []
    body.append(
        {
            "type": "Input.Text",
            "id": "usage_location",
            "label": "Usage location for users who have none (two-letter country code)",
            "value": usage_location,
            "maxLength": 2,
        }
    )
    actions = [submit("Back to users", USERS_LIST)]
    if pools:
        actions.insert(0, submit("Assign", USERS_ASSIGN_DO, {"request_key": request_key}, style="positive"))
    return card(body, actions)


def build_licence_outcome_card(title: str, outcome: LicenceOutcome) -> Card:
    """What happened per user, and the pool's numbers now."""
    body: list[dict[str, Any]] = [heading(title)]
    if outcome.already_done:
        body.append(text("This was already done (the card was sent twice); nothing more was changed."))
    for result in outcome.results:
        mark = "✔" if result.ok else "✖"
        body.append(text(f"{mark} {result.display_name}: {result.message}", color=None if result.ok else "Attention"))
    if outcome.pool is not None:
        pool = outcome.pool
        body.append(
            facts(
                [
                    ("Licence product", pool.name),
                    ("Available", str(pool.available)),
                    ("Assigned", str(pool.consumed)),
                    ("Total", str(pool.active)),
                ]
            )
        )
    return card(body, [submit("Back to users", USERS_LIST), submit("Assign more", USERS_ASSIGN)])


def _kept(values: dict[str, str], key: str) -> dict[str, str]:
    return {"value": values[key]} if values.get(key) else {}


def build_directory_card(
    entries: Sequence[DirectoryEntry],
    users: Sequence[UserRow],
    request_key: str,
    *,
    error: str | None = None,
    values: dict[str, str] | None = None,
) -> Card:
    """The organisation's own directory: import people into the tenant, export tenant users to it.
    `values`: what the admin had entered (kept when the card comes back with an error)."""
    kept = values or {}
    waiting = [entry for entry in entries if not entry.tenant_user_id]
    body: list[dict[str, Any]] = [
        heading("Your organisation's user directory"),
        *_error(error),
        text(f"{len(entries)} people in the directory; {len(waiting)} not yet in the Microsoft tenant."),
        text("Import into the tenant", weight="Bolder"),
    ]
    if waiting:
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": "entry_ids",
                **_kept(kept, "entry_ids"),
                "label": "People to create in the tenant (each gets a generated password by e-mail)",
                "isMultiSelect": True,
                "choices": [
                    {"title": f"{entry.display_name or entry.email} <{entry.email}>", "value": str(entry.entry_id)}
                    for entry in waiting[:MAX_CHOICES]
                ],
            }
        )
        body.append(
            {
                "type": "Input.Text",
                "id": "import_send_to",
                **_kept(kept, "import_send_to"),
                "label": "E-mail the passwords to (empty: each person's own address)",
                "style": "Email",
                "maxLength": 254,
            }
        )
    else:
        body.append(text("Nobody to import. The reseller loads the directory (cspbot directory import).", subtle=True))
    body.append(text("Export tenant users to the directory", weight="Bolder"))
    body.append(
        {
            "type": "Input.ChoiceSet",
            "id": "user_ids",
            **_kept(kept, "user_ids"),
            "label": "Tenant users to add to the directory",
            "isMultiSelect": True,
            "choices": [
                {"title": f"{row.display_name} ({row.user_principal_name})", "value": row.user_id}
                for row in list(users)[:MAX_CHOICES]
            ],
        }
    )
    body.append(
        {
            "type": "Input.Text",
            "id": "send_to",
            **_kept(kept, "send_to"),
            "label": "E-mail the directory passwords to (empty: each user's own address)",
            "style": "Email",
            "maxLength": 254,
        }
    )
    actions = [
        submit("Export selected users", USERS_EXPORT, {"request_key": request_key}),
        submit("Back to users", USERS_LIST),
    ]
    if waiting:
        actions.insert(0, submit("Import selected people", USERS_IMPORT, {"request_key": request_key}))
    return card(body, actions)


def build_directory_outcome_card(title: str, results: Sequence[EntryResult]) -> Card:
    body: list[dict[str, Any]] = [heading(title)]
    for result in results:
        mark = "✔" if result.ok else "✖"
        body.append(text(f"{mark} {result.name}: {result.message}", color=None if result.ok else "Attention"))
    return card(body, [submit("Back to users", USERS_LIST), submit("User directory", USERS_DIRECTORY)])


def build_user_created_card(
    user_id: str, upn: str, name: str, sent_to: str, *, mail_failed: bool, already: bool, mail_queued: bool = False
) -> Card:
    if already:
        lines = [text(f"{name} ({upn}) was already created from this card; nothing more was done.")]
    elif mail_failed:
        lines = [
            text(f"{name} was created as {upn}."),
            text(
                f"The password e-mail to {sent_to} could not be sent; the reseller was alerted. "
                "Reset the password in the Microsoft 365 admin centre.",
                color="Warning",
            ),
        ]
    elif mail_queued:
        lines = [
            text(f"{name} was created as {upn}."),
            text(
                f"The mail server is not answering: the password e-mail to {sent_to} is queued and will be "
                "sent when it is back (the reseller is alerted if it keeps failing).",
                color="Warning",
            ),
        ]
    else:
        lines = [text(f"{name} was created as {upn}. The password was e-mailed to {sent_to}.")]
    return card(
        [heading("User created"), *lines],
        [
            submit("Assign a licence", USERS_ASSIGN, {"user_ids": [user_id]}),
            submit("New user", USERS_NEW),
            submit("Back to users", USERS_LIST),
        ],
    )


def build_continue_here_card(title: str, command: str) -> Card:
    """Sent to the 1:1 chat when a users task is asked for in a channel (its cards hold user data)."""
    return card(
        [heading(title), text("This task shows your tenant's users, so it runs here in our 1:1 chat.")],
        [command_button(f"Start {title.lower()} here", command)],
    )
