"""An organisation's warning settings in chat ("warning settings", admins): one form card.

Steps:
1. show_step   — the settings as a form (with what was just saved, or the value refused and why);
2. handle_step — Save: every value checked by the service (a refused one saves nothing and comes
                 back on the card as entered), then the form again; Done ends.
"""

from __future__ import annotations

from typing import Any

from cards import warnings as cards
from dialogs.base import CARD_PROMPT, TaskDialog, caller_of, card_done
from dialogs.sdk import DialogTurnResult, WaterfallStepContext
from services.container import Services
from services.errors import InvalidInput
from services.i18n import N_, _
from services.roles import Permission
from services.warnings.rules import Kind

DIALOG_ID = "warning_settings_dialog"
TITLE = N_("Warning settings")
FIELDS = ("leads", "seat_window_hours", "idle_days", "excluded", "quiet", "timezone")


def _entered(value: dict[str, Any]) -> dict[str, str]:
    shown = {key: str(value.get(key, ""))[:200] for key in FIELDS}
    shown |= {f"on_{kind.value}": str(value.get(f"on_{kind.value}", "false")) for kind in Kind}
    return shown


class WarningSettingsDialog(TaskDialog):
    title = TITLE

    def __init__(self, services: Services) -> None:
        super().__init__(DIALOG_ID, [self.show_step, self.handle_step])
        self._services = services

    async def show_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        options: dict[str, Any] = dict(step.options or {}) if isinstance(step.options, dict) else {}
        caller = caller_of(step.context)
        caller.require(Permission.MANAGE_SERVICES)
        settings = await self._services.warnings.settings.get(caller.organisation_id)
        card = cards.build_settings_card(
            settings,
            entered=options.get("entered"),
            error=str(options.get("error", "")),
            notice=str(options.get("notice", "")),
        )
        return await step.prompt(CARD_PROMPT, self.prompt_card(card))

    async def handle_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        value: dict[str, Any] = step.result if isinstance(step.result, dict) else {}
        if value.get("verb") != cards.SAVE_SETTINGS:
            await step.context.send_activity(_("Done. Type **warning settings** to change them again."))
            return await step.end_dialog()
        caller = caller_of(step.context)
        caller.require(Permission.MANAGE_SERVICES)
        entered = _entered(value)
        enabled = [kind.value for kind in Kind if entered[f"on_{kind.value}"] == "true"]
        try:
            await self._services.warnings.settings.change(
                caller.organisation_id,
                actor=caller.actor,
                enable=enabled,
                disable=[kind.value for kind in Kind if kind.value not in enabled],
                leads=entered["leads"],
                seat_window_hours=entered["seat_window_hours"],
                idle_days=entered["idle_days"],
                excluded=entered["excluded"],
                quiet=entered["quiet"],
                timezone=entered["timezone"],
            )
        except InvalidInput as bad:
            return await step.replace_dialog(
                self.initial_dialog_id or self.id,
                {"entered": entered, "error": _("Nothing was saved: {message}", message=bad.message)},
            )
        card_done(step.context, _("Saved"))
        return await step.replace_dialog(self.initial_dialog_id or self.id, {"notice": _("Saved.")})
