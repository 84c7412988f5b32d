"""The renewals ahead ("renewals"): one card; admins may withdraw a scheduled change from it.

Steps:
1. show_step   — the renewals of the next 90 days (with what was just done, or why not) and wait;
2. handle_step — "Withdraw the scheduled change" (re-checked by the service) and show again; "Done" ends.
"""

from __future__ import annotations

import uuid
from typing import Any

from cards import renewals as cards
from dialogs.base import CARD_PROMPT, TaskDialog, caller_of, card_done
from dialogs.sdk import DialogTurnResult, WaterfallStepContext
from services.container import Services
from services.errors import DomainError
from services.i18n import N_, _
from services.roles import Permission

DIALOG_ID = "renewals_dialog"
TITLE = N_("Renewals")


class RenewalsDialog(TaskDialog):
    title = TITLE

    def __init__(self, services: Services) -> None:
        super().__init__(DIALOG_ID, [self.show_step, self.handle_step])
        self._services = services

    async def show_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        options: dict[str, Any] = dict(step.options or {}) if isinstance(step.options, dict) else {}
        caller = caller_of(step.context)
        outlook = await self._services.warnings.renewals(caller)
        card = cards.build_renewals_card(
            outlook,
            can_manage=caller.can(Permission.MANAGE_SERVICES),
            notice=str(options.get("notice", "")),
            problem=str(options.get("problem", "")),
        )
        return await step.prompt(CARD_PROMPT, self.prompt_card(card))

    async def handle_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        value: dict[str, Any] = step.result if isinstance(step.result, dict) else {}
        if value.get("verb") == cards.WITHDRAW:
            try:
                result = await self._services.subscription_changes.withdraw_schedule(
                    caller_of(step.context), value.get("subscription_id"), key=uuid.uuid4().hex
                )
            except DomainError as problem:
                return await step.replace_dialog(self.initial_dialog_id or self.id, {"problem": problem.message})
            card_done(step.context)
            return await step.replace_dialog(self.initial_dialog_id or self.id, {"notice": result.message})
        await step.context.send_activity(_("Done. Type **renewals** to see them again."))
        return await step.end_dialog()
