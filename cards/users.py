"""Cards of the users and licences tasks: the users list, one user, the new-user form, licence
assignment, the organisation's directory, and the outcome cards. Pure functions of view models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cards.base import Card, card, command_button, country_choice, error_lines, facts, heading, submit, text
from services import formatting
from services.i18n import _, ngettext
from services.ordering import plan_label
from services.subscriptions.common import status_word

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

# A picker shows at most this many people besides those already ticked, with a search box to find
# the others: a longer list does not fit a chat card (a drop-down of 30 runs off the screen).
MAX_CHOICES = 15
# How many people one card may keep ticked across searches.
MAX_SELECTED = 100


def _search_row(placeholder: str, value: str, search: dict[str, Any], input_id: str = "search") -> dict[str, Any]:
    """A search box with its Search button beside it."""
    box = {"type": "Input.Text", "id": input_id, "placeholder": placeholder, "value": value, "maxLength": 100}
    return {
        "type": "ColumnSet",
        "columns": [
            {"type": "Column", "width": "stretch", "items": [box]},
            {"type": "Column", "width": "auto", "items": [{"type": "ActionSet", "actions": [search]}]},
        ],
    }


def _age(synced_at: datetime, now: datetime) -> str:
    """`just now`, `7 minutes ago`, `3 hours ago`."""
    minutes = int((now - synced_at).total_seconds() // 60)
    if minutes < 1:
        return _("just now")
    if minutes >= 120:
        return _("{plural} ago", plural=ngettext("{n} hour", "{n} hours", minutes // 60))
    return _("{plural} ago", plural=ngettext("{n} minute", "{n} minutes", minutes))


def freshness(synced_at: datetime | None, now: datetime, *, syncing: bool = False) -> str:
    """How fresh the copy is, in words."""
    if synced_at is None:
        if syncing:
            return _("Still reading your users from Microsoft; use Refresh in a moment to see them all.")
        return _("Not read from Microsoft yet.")
    suffix = _(" — refreshing in the background.") if syncing else "."
    return _("Synced with Microsoft {age}{suffix}", age=_age(synced_at, now), suffix=suffix)


def _back() -> dict[str, Any]:
    """Back to the list: nothing on the card is needed, so a required field left empty does not stop it."""
    return {**submit(_("Back to users"), USERS_LIST), "associatedInputs": "none"}


def _picker(
    input_id: str,
    label: str,
    choices: Sequence[tuple[str, str]],
    selected: Sequence[str],
    *,
    total: int,
    noun: tuple[str, str],
) -> list[dict[str, Any]]:
    """A multi-select of people as tick boxes in the card: those already ticked, then at most
    `MAX_CHOICES` others (`choices` holds both, as (title, value)); `total`: how many the current
    search matches, to say when some are not listed."""
    first = {value: title for title, value in reversed(choices)}  # a person listed twice: once
    unique = [(first[value], value) for value in dict.fromkeys(value for _unused, value in choices)]
    ticked = [choice for choice in unique if choice[1] in selected][:MAX_SELECTED]
    others = [choice for choice in unique if choice[1] not in selected][:MAX_CHOICES]
    body: list[dict[str, Any]] = []
    if total > MAX_CHOICES:
        body.append(
            text(
                _(
                    "{plural}: the first {MAX_CHOICES} are listed; search by name to find the others.",
                    plural=formatting.plural(total, *noun),
                    MAX_CHOICES=MAX_CHOICES,
                ),
                subtle=True,
            )
        )
    if ticked or others:
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": input_id,
                "label": label,
                "isMultiSelect": True,
                "style": "expanded",
                "value": ",".join(value for _unused, value in ticked),
                "choices": [{"title": title, "value": value} for title, value in ticked + others],
            }
        )
    return body


def _notice(message: str) -> list[dict[str, Any]]:
    return [text(message, color="Good")] if message else []


def _user_line(row: UserRow) -> dict[str, Any]:
    """One user: name with their licence count and status beside it, the user name under both (a
    user name is long: it gets the card's whole width)."""
    licences = ngettext("{n} licence", "{n} licences", row.licence_count)
    return {
        "type": "Container",
        "separator": True,
        "selectAction": {
            "type": "Action.Submit",
            "title": _("Open {value}", value=row.display_name or row.user_principal_name),
            "data": {"verb": USERS_OPEN, "user_id": row.user_id},
        },
        "items": [
            {
                "type": "ColumnSet",
                "columns": [
                    {
                        "type": "Column",
                        "width": "stretch",
                        "items": [text(row.display_name or row.user_principal_name, weight="Bolder")],
                    },
                    {"type": "Column", "width": "auto", "items": [text(f"{licences} · {row.state}")]},
                ],
            },
            {**text(row.user_principal_name, subtle=True), "spacing": "None"},
        ],
    }


def build_users_card(
    page: UsersPage, now: datetime, *, interactive: bool = True, notice: str = "", error: str | None = None
) -> Card:
    """The tenant's users (one page), with search, paging and freshness. Non-interactive (sent to the
    1:1 chat from a channel) it offers one button that opens the list there."""
    body: list[dict[str, Any]] = [
        heading(_("Users of your Microsoft tenant")),
        text(freshness(page.synced_at, now, syncing=page.syncing), subtle=True),
        *_notice(notice),
        *error_lines(error),
    ]
    if page.last_error:
        body.append(
            text(
                _(
                    "Could not read your users from Microsoft: {last_error} Use Refresh to try again.",
                    last_error=page.last_error,
                ),
                color="Warning",
            )
        )
    if interactive:
        body.append(_search_row(_("Search by name or user name"), page.search, submit(_("Search"), USERS_SEARCH)))
    if page.search:
        matching = ngettext("{n} user matches", "{n} users match", page.total)
        body.append(text(f"{matching} '{page.search}'.", subtle=True))
    if not page.rows:
        body.append(text(_("No users to show.") if page.search or page.synced_at else _("No users read yet.")))
    for row in page.rows:
        line = _user_line(row)
        if not interactive:
            line.pop("selectAction")
        body.append(line)
    users = ngettext("{n} user", "{n} users", page.total)
    body.append(
        text(
            _("Page {page} of {page_count} · {users}", page=page.page, page_count=page.page_count, users=users),
            subtle=True,
        )
    )
    if not interactive:
        return card(body, [submit(_("Open the users list here"), "command", {"command": "users"})])
    actions: list[dict[str, Any]] = []
    if page.page > 1:
        actions.append(submit(_("Previous"), USERS_PAGE, {"page": page.page - 1, "search_was": page.search}))
    if page.page < page.page_count:
        actions.append(submit(_("Next"), USERS_PAGE, {"page": page.page + 1, "search_was": page.search}))
    actions += [
        submit(_("Refresh"), USERS_REFRESH, {"page": page.page, "search_was": page.search}),
        submit(_("New user"), USERS_NEW),
        submit(_("Assign licences"), USERS_ASSIGN),
        {
            "type": "Action.ShowCard",
            "title": _("More"),
            "card": {
                "type": "AdaptiveCard",
                "body": [text(_("The organisation's own user directory: import people into the tenant, or export."))],
                "actions": [submit(_("User directory"), USERS_DIRECTORY), submit(_("Done"), USERS_DONE)],
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
        *error_lines(error),
        facts(
            [
                (_("User name"), detail.user_principal_name),
                (_("First name"), detail.first_name or _("not set")),
                (_("Last name"), detail.last_name or _("not set")),
                (_("Usage location"), detail.usage_location or _("not set")),
                (_("Status"), detail.state),
                (_("Licences"), str(len(detail.licences))),
            ]
        ),
    ]
    if detail.licences_synced_at is not None:
        body.append(
            text(_("Licences read from Microsoft {age}.", age=_age(detail.licences_synced_at, now)), subtle=True)
        )
    if not detail.licences:
        body.append(text(_("This user has no licences.")))
    for licence in detail.licences:
        body.append(text(licence.name, weight="Bolder"))
        if licence.subscriptions:
            lines = [
                f"- {sub.name}: {formatting.seats(sub.quantity)}, {status_word(sub.status)}, "
                f"{plan_label(sub.term_duration, sub.billing_cycle)}"
                for sub in licence.subscriptions
            ]
            body.append(
                {**text(_("From the pooled subscriptions:\n") + "\n".join(lines), subtle=True), "spacing": "None"}
            )
        else:
            body.append({**text(_("No subscription of ours feeds this licence."), subtle=True), "spacing": "None"})
    actions: list[dict[str, Any]] = []
    if detail.licences:
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": "licences",
                "label": _("Licences to remove"),
                "isMultiSelect": True,
                "style": "expanded",
                "choices": [{"title": lic.name, "value": lic.licence_sku_id} for lic in detail.licences],
            }
        )
        actions.append(
            submit(
                _("Remove selected licences"), USERS_UNASSIGN, {"user_id": detail.user_id, "request_key": request_key}
            )
        )
    actions += [
        {**submit(_("Assign a licence"), USERS_ASSIGN, {"user_ids": [detail.user_id]}), "associatedInputs": "none"},
        # the one-line command: block sign-in, remove every licence, free the seats (asked once)
        command_button(_("Offboard…"), f"offboard {detail.user_principal_name}"),
        _back(),
    ]
    return card(body, actions)


# The fields of the new-user form, where an error about one of them is shown.
NEW_USER_FIELDS = ("first_name", "last_name", "display_name", "user_name", "domain", "usage_location", "password_email")


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
        return error_lines(error) if error and error_field == name else []

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
            block["errorMessage"] = _("{label} is required.", label=label)
        if placeholder:
            block["placeholder"] = placeholder
        return [*field_error(name), block]

    domains = defaults.domains
    body: list[dict[str, Any]] = [
        heading(_("New user")),
        text(_("The user is created in your Microsoft tenant at once.")),
        *(error_lines(error) if error_field not in NEW_USER_FIELDS else []),
        *text_input("first_name", _("First name")),
        *text_input("last_name", _("Last name")),
        *text_input(
            "display_name", _("Display name"), placeholder=_("e.g. Kim Lee (from first and last name if empty)")
        ),
        *field_error("user_name"),
        *field_error("domain"),
        *_user_name_inputs(values, domains),
        *field_error("usage_location"),
        country_choice(
            "usage_location", _("Usage location"), values.get("usage_location", defaults.usage_location), required=True
        ),
        *field_error("password_email"),
        {
            "type": "Input.Text",
            "id": "password_email",
            "label": _("E-mail the generated password to"),
            "style": "Email",
            "isRequired": True,
            "errorMessage": _("An e-mail address is required for the password."),
            "value": values.get("password_email", ""),
            "maxLength": 254,
        },
        text(
            _(
                "A strong password is generated and e-mailed to that address only — it is never shown here. "
                "The user must change it at first sign-in."
            ),
            subtle=True,
        ),
    ]
    create = {"request_key": request_key}
    if len(domains) == 1:
        create["domain"] = domains[0]  # the one domain is shown beside the user name, not asked for
    return card(body, [submit(_("Create user"), USERS_CREATE, create, style="positive"), _back()])


def _user_name_inputs(values: Mapping[str, str], domains: Sequence[str]) -> list[dict[str, Any]]:
    """The user name, and the tenant domain after its @: shown beside it when there is one, else a
    choice below it (a domain is too long to share a row with the user name)."""
    user_name = {
        "type": "Input.Text",
        "id": "user_name",
        "label": _("User name"),
        "isRequired": True,
        "errorMessage": _("User name is required."),
        "placeholder": "kim.lee",
        "value": values.get("user_name", ""),
        "maxLength": 64,
    }
    if len(domains) == 1:
        return [
            {
                "type": "ColumnSet",
                "columns": [
                    {"type": "Column", "width": "stretch", "items": [user_name]},
                    {
                        "type": "Column",
                        "width": "auto",
                        "verticalContentAlignment": "Bottom",
                        "items": [text(f"@{domains[0]}")],
                    },
                ],
            }
        ]
    if not domains:
        return [user_name]
    return [
        user_name,
        {
            "type": "Input.ChoiceSet",
            "id": "domain",
            "label": _("Domain (after the @)"),
            "value": values.get("domain") or domains[0],
            "choices": [{"title": f"@{domain}", "value": domain} for domain in domains],
        },
    ]


def _pool_title(pool: PoolView) -> str:
    return _(
        "{name} — {available} available of {active} ({consumed} assigned)",
        name=pool.name,
        available=pool.available,
        active=pool.active,
        consumed=pool.consumed,
    )


def _user_choice(row: UserRow) -> tuple[str, str]:
    licences = ngettext("{n} licence", "{n} licences", row.licence_count)
    return f"{row.display_name} ({row.user_principal_name}) — {licences}", row.user_id


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
    """Pick users (many; those ticked, then at most `MAX_CHOICES` of the search's others), then a
    licence product; each product shows Microsoft's pool numbers with the subscriptions feeding it
    listed under it. `users`: the ticked users and the search's first page; `total_users`: how many
    the search matches."""
    body: list[dict[str, Any]] = [heading(_("Assign licences"))]
    body += error_lines(error) if error_field not in ("users", "licence", "usage_location") else []
    body.append(
        _search_row(
            _("Search users by name or user name"), search, submit(_("Search"), USERS_ASSIGN, {"searching": True})
        )
    )
    body += error_lines(error) if error_field == "users" else []
    body += _picker(
        "user_ids",
        _("Users to get the licence"),
        [_user_choice(row) for row in users],
        selected_users,
        total=total_users,
        noun=(_("user matches") if search else "user", _("users match") if search else "users"),
    )
    if not users:
        body.append(text(_("No users match. Search again, or clear the search box."), subtle=True))
    if not pools:
        body.append(text(_("Your organisation has no licences to assign yet. Buy a subscription first.")))
    else:
        body += error_lines(error) if error_field == "licence" else []
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": "licence",
                "label": _("Licence product"),
                "style": "expanded",
                "value": selected_pool or pools[0].licence_sku_id,
                "choices": [{"title": _pool_title(pool), "value": pool.licence_sku_id} for pool in pools],
            }
        )
        for pool in pools:
            if pool.subscriptions:
                lines = [
                    f"- {sub.name}: {formatting.seats(sub.quantity)} ({status_word(sub.status)})"
                    for sub in pool.subscriptions
                ]
                body.append(text(_("{name} comes from:\n", name=pool.name) + "\n".join(lines), subtle=True))
        body.append(
            text(
                _("Microsoft pools licences per product: subscriptions of the same product share one count."),
                subtle=True,
            )
        )
    body += error_lines(error) if error_field == "usage_location" else []
    body.append(country_choice("usage_location", _("Usage location for users who have none"), usage_location))
    actions = [_back()]
    if pools:
        actions.insert(0, submit(_("Assign"), USERS_ASSIGN_DO, {"request_key": request_key}, style="positive"))
    return card(body, actions)


def build_licence_outcome_card(title: str, outcome: LicenceOutcome) -> Card:
    """What happened per user, and the pool's numbers now."""
    body: list[dict[str, Any]] = [heading(title)]
    if outcome.already_done:
        body.append(text(_("This was already done (the card was sent twice); nothing more was changed.")))
    for result in outcome.results:
        mark = "✔" if result.ok else "✖"
        body.append(text(f"{mark} {result.display_name}: {result.message}", color=None if result.ok else "Attention"))
    if outcome.pool is not None:
        pool = outcome.pool
        body.append(
            facts(
                [
                    (_("Licence product"), pool.name),
                    (_("Available"), str(pool.available)),
                    (_("Assigned"), str(pool.consumed)),
                    (_("Total"), str(pool.active)),
                ]
            )
        )
    return card(body, [_back(), submit(_("Assign more"), USERS_ASSIGN)])


def _kept(values: Mapping[str, str], key: str) -> dict[str, str]:
    return {"value": values[key]} if values.get(key) else {}


def build_directory_card(
    entries: Sequence[DirectoryEntry],
    users: Sequence[UserRow],
    request_key: str,
    *,
    in_directory: int,
    waiting_total: int,
    entries_matching: int,
    users_matching: int,
    error: str | None = None,
    values: Mapping[str, str] | None = None,
) -> Card:
    """The organisation's own directory: import people into the tenant, export tenant users to it.
    `entries`: the people not yet in the tenant that are ticked or match the import search;
    `users`: the tenant users ticked or on the export search's first page. The counts: people in the
    directory, those not yet in the tenant, those the import search matches, the tenant users the
    export search matches. `values`: what the admin had entered (kept when the card comes back)."""
    kept = values or {}
    entry_search, user_search = kept.get("entry_search", ""), kept.get("user_search", "")
    searching = submit(_("Search"), USERS_DIRECTORY, {"searching": True})
    body: list[dict[str, Any]] = [
        heading(_("Your organisation's user directory")),
        *error_lines(error),
        text(
            _(
                "{plural} in the directory; {waiting_total} not yet in the Microsoft tenant.",
                plural=ngettext("{n} person", "{n} people", in_directory),
                waiting_total=waiting_total,
            )
        ),
        {**heading(_("Import into the tenant")), "size": "Medium"},
    ]
    if waiting_total:
        body.append(_search_row(_("Search the directory by name or e-mail"), entry_search, searching, "entry_search"))
        body += _picker(
            "entry_ids",
            _("People to create in the tenant (each gets a generated password by e-mail)"),
            [(f"{entry.display_name or entry.email} ({entry.email})", str(entry.entry_id)) for entry in entries],
            kept.get("entry_ids", "").split(","),
            total=entries_matching,
            noun=("person", "people"),
        )
        body.append(
            {
                "type": "Input.Text",
                "id": "import_send_to",
                **_kept(kept, "import_send_to"),
                "label": _("E-mail the passwords to (empty: each person's own address)"),
                "style": "Email",
                "maxLength": 254,
            }
        )
    else:
        body.append(
            text(_("Nobody to import. The reseller loads the directory (cspbot directory import)."), subtle=True)
        )
    body.append({**heading(_("Export tenant users to the directory")), "size": "Medium"})
    body.append(_search_row(_("Search users by name or user name"), user_search, searching, "user_search"))
    body += _picker(
        "user_ids",
        _("Tenant users to add to the directory"),
        [(f"{row.display_name} ({row.user_principal_name})", row.user_id) for row in users],
        kept.get("user_ids", "").split(","),
        total=users_matching,
        noun=("user", "users"),
    )
    body.append(
        {
            "type": "Input.Text",
            "id": "send_to",
            **_kept(kept, "send_to"),
            "label": _("E-mail the directory passwords to (empty: each user's own address)"),
            "style": "Email",
            "maxLength": 254,
        }
    )
    actions = [submit(_("Export selected users"), USERS_EXPORT, {"request_key": request_key}), _back()]
    if waiting_total:
        actions.insert(0, submit(_("Import selected people"), USERS_IMPORT, {"request_key": request_key}))
    return card(body, actions)


def build_directory_outcome_card(title: str, results: Sequence[EntryResult]) -> Card:
    body: list[dict[str, Any]] = [heading(title)]
    for result in results:
        mark = "✔" if result.ok else "✖"
        body.append(text(f"{mark} {result.name}: {result.message}", color=None if result.ok else "Attention"))
    return card(body, [_back(), submit(_("User directory"), USERS_DIRECTORY)])


def build_user_created_card(
    user_id: str, upn: str, name: str, sent_to: str, *, mail_failed: bool, already: bool, mail_queued: bool = False
) -> Card:
    if already:
        lines = [
            text(_("{name} ({upn}) was already created from this card; nothing more was done.", name=name, upn=upn))
        ]
    elif mail_failed:
        lines = [
            text(_("{name} was created as {upn}.", name=name, upn=upn)),
            text(
                _(
                    "The password e-mail to {sent_to} could not be sent; the reseller was alerted. Reset the "
                    "password in the Microsoft 365 admin centre.",
                    sent_to=sent_to,
                ),
                color="Warning",
            ),
        ]
    elif mail_queued:
        lines = [
            text(_("{name} was created as {upn}.", name=name, upn=upn)),
            text(
                _(
                    "The mail server is not answering: the password e-mail to {sent_to} is queued and will be "
                    "sent when it is back (the reseller is alerted if it keeps failing).",
                    sent_to=sent_to,
                ),
                color="Warning",
            ),
        ]
    else:
        lines = [
            text(
                _(
                    "{name} was created as {upn}. The password was e-mailed to {sent_to}.",
                    name=name,
                    upn=upn,
                    sent_to=sent_to,
                )
            )
        ]
    return card(
        [heading(_("User created")), *lines],
        [
            submit(_("Assign a licence"), USERS_ASSIGN, {"user_ids": [user_id]}),
            submit(_("New user"), USERS_NEW),
            _back(),
        ],
    )


def build_continue_here_card(title: str, command: str) -> Card:
    """Sent to the 1:1 chat when a users task is asked for in a channel (its cards hold user data)."""
    return card(
        [heading(title), text(_("This task shows your tenant's users, so it runs here in our 1:1 chat."))],
        [command_button(_("Start “{title}” here", title=title), command)],
    )
