"""An organisation's warning settings in chat ("warning settings", admins): one form card, a card flow.

Save → every value checked by the service (a refused one saves nothing and comes back on the card
as entered, with why) → the form again with "Saved."; Done ends the task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cards import warnings as cards
from dialogs.base import END, ERROR, NOTICE, CardFlow, Outcome, Turn, Verb, card_done
from services.errors import InvalidInput
from services.i18n import N_, _
from services.roles import Permission
from services.warnings.rules import Kind
from services.warnings.settings import WarningSettingsStore

DIALOG_ID = "warning_settings_dialog"
TITLE = N_("Warning settings")
SETTINGS = "settings"
FIELDS = ("leads", "seat_window_hours", "idle_days", "excluded", "quiet", "timezone")
SWITCHES = tuple(f"on_{kind.value}" for kind in Kind)


def _entered(value: Mapping[str, Any]) -> dict[str, str]:
    shown = {key: str(value.get(key, ""))[:200] for key in FIELDS}
    shown |= {switch: str(value.get(switch, "false")) for switch in SWITCHES}
    return shown


@dataclass(frozen=True)
class SettingsForm:
    """The form as entered: its text fields (the service reads them) and the warnings switched on."""

    entered: dict[str, str]
    enabled: tuple[str, ...]

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> SettingsForm:
        entered = _entered(payload)
        return cls(entered, tuple(kind.value for kind in Kind if entered[f"on_{kind.value}"] == "true"))


class WarningSettingsDialog(CardFlow):
    title = TITLE
    home = SETTINGS
    fallback = cards.CLOSE_SETTINGS

    def __init__(self, settings: WarningSettingsStore) -> None:
        super().__init__(DIALOG_ID)
        self._settings = settings
        self.screens = {SETTINGS: self._form}
        self.verbs = {
            cards.SAVE_SETTINGS: Verb(SETTINGS, self._save, SETTINGS, SettingsForm.of, FIELDS + SWITCHES),
            cards.CLOSE_SETTINGS: Verb(END, self._close),
        }

    async def _form(self, turn: Turn) -> dict[str, Any]:
        """The settings as a form (with what was just saved, or the value refused and why, as entered)."""
        turn.caller.require(Permission.MANAGE_SERVICES)
        settings = await self._settings.get(turn.caller.organisation_id)
        return cards.build_settings_card(
            settings,
            entered=_entered(turn.view) if ERROR in turn.view else None,
            error=str(turn.view.get(ERROR, "")),
            notice=str(turn.view.get(NOTICE, "")),
        )

    async def _save(self, turn: Turn, form: SettingsForm) -> Outcome:
        caller = turn.caller
        caller.require(Permission.MANAGE_SERVICES)
        entered = form.entered
        try:
            await self._settings.change(
                caller.organisation_id,
                actor=caller.actor,
                enable=list(form.enabled),
                disable=[kind.value for kind in Kind if kind.value not in form.enabled],
                leads=entered["leads"],
                seat_window_hours=entered["seat_window_hours"],
                idle_days=entered["idle_days"],
                excluded=entered["excluded"],
                quiet=entered["quiet"],
                timezone=entered["timezone"],
            )
        except InvalidInput as bad:
            raise InvalidInput(_("Nothing was saved: {reason}", reason=bad.message), field=bad.field) from None
        card_done(turn.context, _("Saved"))
        return _("Saved.")

    async def _close(self, _turn: Turn, _nothing: None) -> Outcome:
        return _("Done. Type **warning settings** to change them again.")
