"""Users: the tenant's users and everything done from that list, as one card loop.

Steps:
  show_step — render the current screen (list, one user, new user, assign, directory, an outcome)
              and wait for a card submit; in a channel the list goes to the requester's 1:1 chat.
  act_step  — run what the submit's verb asks (through the services, which re-check organisation
              and role), then loop back to show_step with the next screen; bad input re-shows the
              same card with the message at the field and the entered values kept.

"users", "new user" and "assign" are the same loop started on a different screen.
"""

from __future__ import annotations

import uuid
from typing import Any

from microsoft_agents.hosting.core import TurnContext

from cards import users as ui
from dialogs import licences
from dialogs.base import CARD_PROMPT, TaskDialog, caller_of, card_activity, card_done
from dialogs.private_replies import send_privately
from dialogs.sdk import DialogTurnResult, WaterfallStepContext
from services.access import Caller
from services.container import Services
from services.db import utcnow
from services.errors import DomainError, InvalidInput
from services.payloads import page_number
from services.users.directory import matching
from services.users.service import NewUser

LIST, USER, NEW, ASSIGN, DIRECTORY, CARD = "list", "user", "new", "assign", "directory", "card"
CHANNEL_STARTS = {NEW: ("New user", "new user"), ASSIGN: ("Assign licences", "assign")}
DIRECTORY_FIELDS = ("entry_ids", "import_send_to", "user_ids", "send_to", "entry_search", "user_search")


def new_key() -> str:
    return uuid.uuid4().hex


def is_personal(context: TurnContext) -> bool:
    conversation = context.activity.conversation
    return conversation is None or (conversation.conversation_type or "personal") == "personal"


def ids_of(value: Any) -> list[str]:
    """A multi-select's value ("a,b,c") or a list of ids from a button."""
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return []


def text_of(value: dict[str, Any], key: str, limit: int = 256) -> str:
    item = value.get(key)
    return str(item).strip()[:limit] if isinstance(item, str | int) else ""


def directory_values(value: dict[str, Any]) -> dict[str, str]:
    """What the admin had entered on the directory card, to show it again."""
    return {key: text_of(value, key, 2000 if key.endswith("_ids") else 254) for key in DIRECTORY_FIELDS}


# Buttons that change something at Microsoft or in the directory: once done, their card is a record.
COMMITTING_VERBS = frozenset({ui.USERS_CREATE, ui.USERS_ASSIGN_DO, ui.USERS_UNASSIGN, ui.USERS_IMPORT, ui.USERS_EXPORT})


class UsersDialog(TaskDialog):
    title = "Users"

    def __init__(self, services: Services, dialog_id: str = "users_dialog", start: str = LIST) -> None:
        super().__init__(dialog_id, [self.show_step, self.act_step])
        self._services = services
        self._start = start
        self._loop_id = f"{dialog_id}.steps"

    # --- steps ----------------------------------------------------------------------------------

    async def show_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        options: dict[str, Any] = dict(step.options) if isinstance(step.options, dict) else {"screen": self._start}
        caller = caller_of(step.context)
        if not is_personal(step.context):
            # User data is private: it goes to the requester's 1:1 chat, where the task continues.
            if options.get("screen", LIST) == LIST:
                page = await self._services.users.list_users(caller)
                private = ui.build_users_card(page, utcnow(), interactive=False)
            else:
                private = ui.build_continue_here_card(*CHANNEL_STARTS.get(options.get("screen"), ("Users", "users")))
            await send_privately(step.context, caller, card_activity(private))
            return await step.end_dialog()
        step.values["options"] = options
        card = await self.render(caller, options)
        return await step.prompt(CARD_PROMPT, self.prompt_card(card))

    async def act_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        value = step.result if isinstance(step.result, dict) else {}
        current = step.values.get("options") or {"screen": self._start}
        caller = caller_of(step.context)
        verb = str(value.get("verb", ""))
        if verb == ui.USERS_DONE:
            await step.context.send_activity("Done with users. Type **menu** for more.")
            return await step.end_dialog()
        following = await self.act(caller, verb, value, current)
        if verb in COMMITTING_VERBS and not following.get("error"):
            card_done(step.context)
        return await step.replace_dialog(self._loop_id, following)

    # --- screens --------------------------------------------------------------------------------

    async def render(self, caller: Caller, options: dict[str, Any]) -> dict[str, Any]:
        screen = options.get("screen", LIST)
        users = self._services.users
        if screen == CARD:
            return dict(options["card"])
        if screen == USER:
            detail = await users.get_user(caller, str(options["user_id"]))
            return ui.build_user_card(
                detail, utcnow(), new_key(), notice=options.get("notice", ""), error=options.get("error")
            )
        if screen == NEW:
            defaults = await users.new_user_defaults(caller)
            return ui.build_new_user_card(
                defaults,
                options.get("values", {}),
                new_key(),
                error=options.get("error"),
                error_field=options.get("error_field"),
            )
        if screen == ASSIGN:
            return await licences.render_assign(self._services, caller, options)
        if screen == DIRECTORY:
            return await self._directory_card(caller, options)
        page = await users.list_users(caller, search=options.get("search", ""), page=int(options.get("page", 1)))
        return ui.build_users_card(page, utcnow(), notice=options.get("notice", ""), error=options.get("error"))

    async def _directory_card(self, caller: Caller, options: dict[str, Any]) -> dict[str, Any]:
        """The directory card: the people ticked and those the import search matches; the tenant
        users ticked and the export search's first page."""
        values: dict[str, str] = dict(options.get("values", {}))
        entries = await self._services.directory.entries(caller)
        waiting = [entry for entry in entries if not entry.tenant_user_id]
        ticked_entries = set(ids_of(values.get("entry_ids")))
        matches = matching(waiting, values.get("entry_search", ""))
        shown = [entry for entry in waiting if str(entry.entry_id) in ticked_entries] + matches
        page = await self._services.users.list_users(
            caller, search=values.get("user_search", ""), page_size=ui.MAX_CHOICES
        )
        ticked_users = await self._services.users.rows_of(caller, ids_of(values.get("user_ids")))
        return ui.build_directory_card(
            shown,
            ticked_users + [row for row in page.rows if row not in ticked_users],
            new_key(),
            in_directory=len(entries),
            waiting_total=len(waiting),
            entries_matching=len(matches),
            users_matching=page.total,
            error=options.get("error"),
            values=values,
        )

    async def act(self, caller: Caller, verb: str, value: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
        """The next screen's options after doing what `verb` asks."""
        try:
            return await self._act(caller, verb, value, current)
        except DomainError as error:
            # Shown on the card the admin was using; whatever they typed is kept.
            retry = dict(current)
            retry.update(error=error.message, error_field=error.field if isinstance(error, InvalidInput) else None)
            if retry.get("screen") == NEW:
                retry["values"] = {key: text_of(value, key) for key in ui.NEW_USER_FIELDS} or retry.get("values", {})
            if retry.get("screen") == ASSIGN:
                retry.update(licences.assign_values(value))
            if retry.get("screen") == DIRECTORY:
                retry["values"] = directory_values(value)
            if retry.get("screen") in (LIST, CARD, None):
                return {"screen": LIST, "notice": "", "error": error.message}
            return retry

    async def _act(self, caller: Caller, verb: str, value: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
        users = self._services.users
        if verb == ui.USERS_SEARCH:
            return {"screen": LIST, "search": text_of(value, "search", 100), "page": 1}
        if verb == ui.USERS_PAGE:
            return {
                "screen": LIST,
                "search": text_of(value, "search_was", 100),
                "page": page_number(value.get("page"), 1),
            }
        if verb == ui.USERS_REFRESH:
            finished = await users.refresh(caller)
            notice = "Refreshed from Microsoft." if finished else "Still syncing a large tenant; refresh again shortly."
            return {
                "screen": LIST,
                "search": text_of(value, "search_was", 100),
                "page": page_number(value.get("page"), 1),
                "notice": notice,
            }
        if verb == ui.USERS_OPEN:
            return {"screen": USER, "user_id": text_of(value, "user_id", 64)}
        if verb == ui.USERS_NEW:
            return {"screen": NEW, "values": {}}
        if verb == ui.USERS_CREATE:
            return await self._create(caller, value)
        if verb in (ui.USERS_ASSIGN, ui.USERS_ASSIGN_DO, ui.USERS_UNASSIGN):
            return await licences.act(self._services, caller, verb, value)
        if verb == ui.USERS_DIRECTORY:
            searched = value.get("searching") is True
            return {"screen": DIRECTORY, "values": directory_values(value) if searched else {}}
        if verb == ui.USERS_IMPORT:
            results = await self._services.directory.import_to_tenant(
                caller,
                ids_of(value.get("entry_ids")),
                request_key=text_of(value, "request_key", 64),
                send_to=text_of(value, "import_send_to", 254),
            )
            return {"screen": CARD, "card": ui.build_directory_outcome_card("Imported into the tenant", results)}
        if verb == ui.USERS_EXPORT:
            results = await self._services.directory.export_from_tenant(
                caller,
                ids_of(value.get("user_ids")),
                request_key=text_of(value, "request_key", 64),
                send_to=text_of(value, "send_to", 254),
            )
            return {"screen": CARD, "card": ui.build_directory_outcome_card("Exported to the directory", results)}
        if verb == ui.USERS_LIST:
            return {"screen": LIST}
        return {key: item for key, item in current.items() if key not in ("error", "error_field", "notice")}

    async def _create(self, caller: Caller, value: dict[str, Any]) -> dict[str, Any]:
        values = {key: text_of(value, key) for key in ui.NEW_USER_FIELDS}
        key = text_of(value, "request_key", 64)
        if not key:
            raise InvalidInput("This card is out of date; fill in the new form.")
        created = await self._services.users.create_user(caller, NewUser(**values), request_key=key)
        card = ui.build_user_created_card(
            created.user_id,
            created.user_principal_name,
            created.display_name,
            created.password_sent_to,
            mail_failed=created.mail_failed,
            already=created.already_done,
            mail_queued=created.mail_queued,
        )
        return {"screen": CARD, "card": card}
