"""The renewals ahead ("renewals"): one card, a card flow; admins may withdraw a scheduled change
from it ("Withdraw the scheduled change" → the service re-checks it → the card again, with what was
done or why not). "Done" (or an old card's button) ends the task.
"""

from __future__ import annotations

import uuid
from typing import Any

from cards import renewals as cards
from dialogs.base import END, ERROR, NOTICE, CardFlow, Outcome, Turn, Verb
from dialogs.subscriptions import Target
from services.i18n import N_, _
from services.roles import Permission
from services.subscriptions import SubscriptionChanges
from services.warnings.service import WarningService

DIALOG_ID = "renewals_dialog"
TITLE = N_("Renewals")
RENEWALS = "renewals"


class RenewalsDialog(CardFlow):
    title = TITLE
    home = RENEWALS
    fallback = cards.CLOSE

    def __init__(self, warnings: WarningService, changes: SubscriptionChanges) -> None:
        super().__init__(DIALOG_ID)
        self._warnings = warnings
        self._changes = changes
        self.screens = {RENEWALS: self._renewals}
        self.verbs = {
            cards.WITHDRAW: Verb(RENEWALS, self._withdraw, parse=Target.of, done=True),
            cards.CLOSE: Verb(END, self._close),
        }

    async def _renewals(self, turn: Turn) -> dict[str, Any]:
        """The renewals of the next 90 days, with what was just done (or why not)."""
        outlook = await self._warnings.renewals(turn.caller)
        return cards.build_renewals_card(
            outlook,
            can_manage=turn.caller.can(Permission.MANAGE_SERVICES),
            notice=str(turn.view.get(NOTICE, "")),
            problem=str(turn.view.get(ERROR, "")),
        )

    async def _withdraw(self, turn: Turn, target: Target) -> Outcome:
        result = await self._changes.withdraw_schedule(turn.caller, target.subscription_id, key=uuid.uuid4().hex)
        return result.message

    async def _close(self, _turn: Turn, _nothing: None) -> Outcome:
        return _("Done. Type **renewals** to see them again.")
