"""Users: the tenant's users and everything done from that list, as a card flow — each click is
"verb → service → next card", declared in `UsersDialog.verbs`.

Screens: the list, one user, a new user form, assign licences, the directory (import/export), and
`card` (an outcome). In a channel the list goes to the requester's 1:1 chat, where the task continues.
Bad input re-shows the same card with the message at the field and the entered values kept.

"users", "new user" and "assign" are the same flow started on a different screen.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from microsoft_agents.hosting.core import TurnContext

from cards import users as ui
from dialogs.base import (
    CARD,
    END,
    ERROR,
    ERROR_FIELD,
    NOTICE,
    SCREEN,
    CardFlow,
    Next,
    Outcome,
    Turn,
    Verb,
    View,
    caller_of,
    card_activity,
    shown_card,
)
from dialogs.licences import ASSIGN_FIELDS, AssignChoice, Assignment, Unassignment, ids_of, pool_note, render_assign
from dialogs.private_replies import send_privately
from dialogs.sdk import DialogTurnResult, WaterfallStepContext
from services.db import utcnow
from services.errors import InvalidInput
from services.i18n import N_, _
from services.payloads import page_number
from services.users import DirectoryService, LicenceService, UserService
from services.users.directory import matching
from services.users.service import NewUser

LIST, USER, NEW, ASSIGN, DIRECTORY = "list", "user", "new", "assign", "directory"
CHANNEL_STARTS = {NEW: (N_("New user"), "new user"), ASSIGN: (N_("Assign licences"), "assign")}
DIRECTORY_FIELDS = ("entry_ids", "import_send_to", "user_ids", "send_to", "entry_search", "user_search")


def new_key() -> str:
    return uuid.uuid4().hex


def is_personal(context: TurnContext) -> bool:
    conversation = context.activity.conversation
    return conversation is None or (conversation.conversation_type or "personal") == "personal"


def text_of(value: Mapping[str, Any], key: str, limit: int = 256) -> str:
    item = value.get(key)
    return str(item).strip()[:limit] if isinstance(item, str | int) else ""


def directory_values(value: Mapping[str, Any]) -> dict[str, str]:
    """What the admin had entered on the directory card, to show it again."""
    return {key: text_of(value, key, 2000 if key.endswith("_ids") else 254) for key in DIRECTORY_FIELDS}


# --- what a card sends back, read once -------------------------------------------------------------


@dataclass(frozen=True)
class ListWanted:
    search: str
    page: int

    @classmethod
    def searched(cls, payload: Mapping[str, Any]) -> ListWanted:
        return cls(text_of(payload, "search", 100), 1)

    @classmethod
    def paged(cls, payload: Mapping[str, Any]) -> ListWanted:
        return cls(text_of(payload, "search_was", 100), page_number(payload.get("page"), 1))


@dataclass(frozen=True)
class UserWanted:
    user_id: str

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> UserWanted:
        return cls(text_of(payload, "user_id", 64))


@dataclass(frozen=True)
class NewUserForm:
    user: NewUser
    key: str

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> NewUserForm:
        values = {key: text_of(payload, key) for key in ui.NEW_USER_FIELDS}
        key = text_of(payload, "request_key", 64)
        if not key:
            raise InvalidInput(_("This card is out of date; fill in the new form."))
        return cls(NewUser(**values), key)


@dataclass(frozen=True)
class DirectoryForm:
    """The directory card as entered (a search keeps it; an import or export acts on its ticks)."""

    values: dict[str, str]
    searched: bool

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> DirectoryForm:
        return cls(directory_values(payload), payload.get("searching") is True)


@dataclass(frozen=True)
class Transfer:
    ids: tuple[str, ...]
    key: str
    send_to: str

    @classmethod
    def imported(cls, payload: Mapping[str, Any]) -> Transfer:
        return cls(
            tuple(ids_of(payload.get("entry_ids"))),
            text_of(payload, "request_key", 64),
            text_of(payload, "import_send_to", 254),
        )

    @classmethod
    def exported(cls, payload: Mapping[str, Any]) -> Transfer:
        return cls(
            tuple(ids_of(payload.get("user_ids"))),
            text_of(payload, "request_key", 64),
            text_of(payload, "send_to", 254),
        )


class UsersDialog(CardFlow):
    title = N_("Users")
    home = LIST

    def __init__(
        self,
        users: UserService,
        licences: LicenceService,
        directory: DirectoryService,
        dialog_id: str = "users_dialog",
        start: str = LIST,
    ) -> None:
        super().__init__(dialog_id, start)
        self._users, self._licences, self._directory = users, licences, directory
        self.screens = {
            LIST: self._list,
            USER: self._user,
            NEW: self._new,
            ASSIGN: self._assign,
            DIRECTORY: self._directory_card,
            CARD: shown_card,
        }
        self.verbs = {
            ui.USERS_DONE: Verb(END, self._done),
            ui.USERS_LIST: Verb(LIST),
            ui.USERS_SEARCH: Verb(LIST, self._list_of, parse=ListWanted.searched),
            ui.USERS_PAGE: Verb(LIST, self._list_of, parse=ListWanted.paged),
            ui.USERS_REFRESH: Verb(LIST, self._refresh, parse=ListWanted.paged),
            ui.USERS_OPEN: Verb(USER, self._open, parse=UserWanted.of),
            ui.USERS_NEW: Verb(NEW),
            ui.USERS_CREATE: Verb(CARD, self._create, NEW, NewUserForm.of, ui.NEW_USER_FIELDS, done=True),
            ui.USERS_ASSIGN: Verb(ASSIGN, keep=ASSIGN_FIELDS),
            ui.USERS_ASSIGN_DO: Verb(CARD, self._assign_licences, ASSIGN, Assignment.of, ASSIGN_FIELDS, done=True),
            ui.USERS_UNASSIGN: Verb(USER, self._unassign, USER, Unassignment.of, ("user_id",), done=True),
            ui.USERS_DIRECTORY: Verb(DIRECTORY, self._directory_form, parse=DirectoryForm.of),
            ui.USERS_IMPORT: Verb(CARD, self._import, DIRECTORY, Transfer.imported, DIRECTORY_FIELDS, done=True),
            ui.USERS_EXPORT: Verb(CARD, self._export, DIRECTORY, Transfer.exported, DIRECTORY_FIELDS, done=True),
        }

    async def opening(self, step: WaterfallStepContext, view: View, /) -> DialogTurnResult | None:
        """User data is private: asked in a channel, it goes to the requester's 1:1 chat instead."""
        if is_personal(step.context):
            return None
        caller = caller_of(step.context)
        if view.get(SCREEN, LIST) == LIST:
            page = await self._users.list_users(caller)
            private = ui.build_users_card(page, utcnow(), interactive=False)
        else:
            title, command = CHANNEL_STARTS.get(str(view.get(SCREEN)), (N_("Users"), "users"))
            private = ui.build_continue_here_card(_(title), command)
        await send_privately(step.context, caller, card_activity(private))
        return await step.end_dialog()

    # --- screens: render(turn) -> card ---------------------------------------------------------------

    async def _list(self, turn: Turn) -> dict[str, Any]:
        view = turn.view
        page = await self._users.list_users(
            turn.caller, search=str(view.get("search", "")), page=page_number(view.get("page"), 1)
        )
        return ui.build_users_card(page, utcnow(), notice=str(view.get(NOTICE, "")), error=view.get(ERROR))

    async def _user(self, turn: Turn) -> dict[str, Any]:
        detail = await self._users.get_user(turn.caller, str(turn.view.get("user_id", "")))
        return ui.build_user_card(
            detail, utcnow(), new_key(), notice=str(turn.view.get(NOTICE, "")), error=turn.view.get(ERROR)
        )

    async def _new(self, turn: Turn) -> dict[str, Any]:
        defaults = await self._users.new_user_defaults(turn.caller)
        values = {key: text_of(turn.view, key) for key in ui.NEW_USER_FIELDS if key in turn.view}
        return ui.build_new_user_card(
            defaults, values, new_key(), error=turn.view.get(ERROR), error_field=turn.view.get(ERROR_FIELD)
        )

    async def _assign(self, turn: Turn) -> dict[str, Any]:
        return await render_assign(self._users, self._licences, turn.caller, turn.view)

    async def _directory_card(self, turn: Turn) -> dict[str, Any]:
        """The directory card: the people ticked and those the import search matches; the tenant
        users ticked and the export search's first page."""
        caller = turn.caller
        values = directory_values(turn.view) if any(key in turn.view for key in DIRECTORY_FIELDS) else {}
        entries = await self._directory.entries(caller)
        waiting = [entry for entry in entries if not entry.tenant_user_id]
        ticked_entries = set(ids_of(values.get("entry_ids")))
        matches = matching(waiting, values.get("entry_search", ""))
        shown = [entry for entry in waiting if str(entry.entry_id) in ticked_entries] + matches
        page = await self._users.list_users(caller, search=values.get("user_search", ""), page_size=ui.MAX_CHOICES)
        ticked_users = await self._users.rows_of(caller, ids_of(values.get("user_ids")))
        return ui.build_directory_card(
            shown,
            ticked_users + [row for row in page.rows if row not in ticked_users],
            new_key(),
            in_directory=len(entries),
            waiting_total=len(waiting),
            entries_matching=len(matches),
            users_matching=page.total,
            error=turn.view.get(ERROR),
            values=values,
        )

    # --- verbs: action(turn, parsed) -> notice | Next ------------------------------------------------

    async def _done(self, _turn: Turn, _nothing: None) -> Outcome:
        return _("Done with users. Type **menu** for more.")

    async def _list_of(self, _turn: Turn, wanted: ListWanted) -> Outcome:
        return Next(LIST, {"search": wanted.search, "page": wanted.page})

    async def _refresh(self, turn: Turn, wanted: ListWanted) -> Outcome:
        finished = await self._users.refresh(turn.caller)
        notice = (
            _("Refreshed from Microsoft.") if finished else _("Still syncing a large tenant; refresh again shortly.")
        )
        return Next(LIST, {"search": wanted.search, "page": wanted.page, NOTICE: notice})

    async def _open(self, _turn: Turn, wanted: UserWanted) -> Outcome:
        return Next(USER, {"user_id": wanted.user_id})

    async def _create(self, turn: Turn, form: NewUserForm) -> Outcome:
        created = await self._users.create_user(turn.caller, form.user, request_key=form.key)
        card = ui.build_user_created_card(
            created.user_id,
            created.user_principal_name,
            created.display_name,
            created.password_sent_to,
            mail_failed=created.mail_failed,
            already=created.already_done,
            mail_queued=created.mail_queued,
        )
        return Next(CARD, {CARD: card})

    async def _assign_licences(self, turn: Turn, assignment: Assignment) -> Outcome:
        choice: AssignChoice = assignment.choice
        outcome = await self._licences.assign(
            turn.caller,
            list(choice.selected),
            choice.licence,
            request_key=assignment.key,
            usage_location=choice.usage_location,
        )
        return Next(CARD, {CARD: ui.build_licence_outcome_card(_("Licences assigned"), outcome)})

    async def _unassign(self, turn: Turn, unassignment: Unassignment) -> Outcome:
        outcome = await self._licences.unassign(
            turn.caller, unassignment.user_id, list(unassignment.licences), request_key=unassignment.key
        )
        if outcome.results and all(result.ok for result in outcome.results):
            notice = _("Licences removed. {pool}", pool=pool_note(outcome)).strip()
            return Next(USER, {"user_id": unassignment.user_id, NOTICE: notice})
        return Next(CARD, {CARD: ui.build_licence_outcome_card(_("Licences removed"), outcome)})

    async def _directory_form(self, _turn: Turn, form: DirectoryForm) -> Outcome:
        return Next(DIRECTORY, form.values if form.searched else {})

    async def _import(self, turn: Turn, transfer: Transfer) -> Outcome:
        results = await self._directory.import_to_tenant(
            turn.caller, list(transfer.ids), request_key=transfer.key, send_to=transfer.send_to
        )
        return Next(CARD, {CARD: ui.build_directory_outcome_card(_("Imported into the tenant"), results)})

    async def _export(self, turn: Turn, transfer: Transfer) -> Outcome:
        results = await self._directory.export_from_tenant(
            turn.caller, list(transfer.ids), request_key=transfer.key, send_to=transfer.send_to
        )
        return Next(CARD, {CARD: ui.build_directory_outcome_card(_("Exported to the directory"), results)})
