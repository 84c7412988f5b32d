"""The conversation skeleton's cards: welcome, menu, help, not registered, something went wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cards.base import Card, card, command_button, facts, heading, text
from services.i18n import _


@dataclass(frozen=True)
class MenuEntry:
    command: str
    title: str
    description: str
    shortcuts: tuple[tuple[str, str], ...] = ()  # (what to type, what it shows)


@dataclass(frozen=True)
class CallerSummary:
    display_name: str
    organisation_name: str
    roles: Sequence[str]


def _roles_text(roles: Sequence[str]) -> str:
    return ", ".join(sorted(roles)) if roles else "none"


def build_menu_card(caller: CallerSummary, entries: Sequence[MenuEntry]) -> Card:
    body = [
        heading(_("What would you like to do?")),
        text(
            _(
                "{organisation_name} · signed in as {display_name} ({roles_text})",
                organisation_name=caller.organisation_name,
                display_name=caller.display_name,
                roles_text=_roles_text(caller.roles),
            ),
            subtle=True,
        ),
    ]
    if entries:
        # One tappable row per task: every task has its button, however many the roles allow (a card's
        # own action bar shows only a few in Teams and hides the rest behind "...").
        body.extend(_menu_row(entry) for entry in entries)
    else:
        body.append(text(_("No tasks are available to you here yet. Ask your reseller if you expected some.")))
    body.append(text(_("Tap a task or type its command. Type **cancel** at any time to stop."), subtle=True))
    return card(body, [command_button(_("Help"), "help")])


def _menu_row(entry: MenuEntry) -> dict[str, Any]:
    return {
        "type": "Container",
        "style": "emphasis",
        "spacing": "Small",
        "selectAction": command_button(entry.title, entry.command),
        "items": [
            text(f"**{entry.title}** · `{entry.command}`"),
            {**text(entry.description, subtle=True), "spacing": "None"},
        ],
    }


def build_welcome_card(caller: CallerSummary, entries: Sequence[MenuEntry]) -> Card:
    body = [
        heading(_("Welcome, {display_name}", display_name=caller.display_name)),
        text(
            _(
                "I help {organisation_name} run its Microsoft 365 services with your reseller right here in Teams.",
                organisation_name=caller.organisation_name,
            )
        ),
    ]
    menu = build_menu_card(caller, entries)
    body.extend(menu["body"][2:])
    return card(body, menu.get("actions", []))


def build_help_card(
    entries: Sequence[MenuEntry],
    *,
    in_task: str | None = None,
    shortcuts: Sequence[tuple[str, str]] = (),
    examples: Sequence[str] = (),
) -> Card:
    """The basic commands, the caller's tasks, what can be typed to go straight to a result (inside a
    task, that task's own `shortcuts`) and one-line command `examples`."""
    body = [heading(_("How to use this bot"))]
    if in_task:
        body.append(
            text(_("You are in **{in_task}**. Answer the card above, or type **cancel** to stop it.", in_task=in_task))
        )
    body.append(
        text(
            _(
                "Type a command (for example **menu**) or use the buttons on the cards. In a team channel, "
                "@mention me first; lists of users and bills are sent to you privately."
            )
        )
    )
    commands = [
        ("menu", _("Show what I can do")),
        ("help", _("This help")),
        ("cancel", _("Stop the current task")),
        ("language", _("Show or choose the language I answer in")),
    ]
    commands.extend((entry.command, entry.description) for entry in entries)
    body.append(facts(commands))
    sections = [(entry.title, entry.shortcuts) for entry in entries if entry.shortcuts]
    if in_task and shortcuts:
        sections.append((in_task, tuple(shortcuts)))
    for title, typed in sections:
        body.append(text(_("**{title}**: type these to go straight to the result", title=title), weight=None))
        body.append(facts(typed))
    if examples:
        intro = _("Or say it in one line — I show what it does and costs before anything changes:")
        body.append(text(intro, weight="Bolder"))
        body.append(text("\n".join(f"- {example}" for example in examples)))
    return card(body, [command_button(_("Menu"), "menu")])


def build_not_registered_card(display_name: str) -> Card:
    who = display_name or "there"
    return card(
        [
            heading(_("Hello {who} — you are not registered yet", who=who)),
            text(
                _(
                    "This bot serves the customer admins of our Microsoft CSP reseller. Your account is not "
                    "registered for any customer organisation, so I cannot show or change anything for you."
                )
            ),
            text(
                _(
                    "Ask your reseller's support to add you: give them your work e-mail address and the "
                    "role you need (admin, approver or billing). Once they have, just say hello again."
                )
            ),
        ]
    )


def build_error_card(reference_id: str) -> Card:
    return card(
        [
            heading(_("Sorry, something went wrong")),
            text(
                _(
                    "I could not finish your request, so I have reset what we were doing. "
                    "You can start again from the menu."
                )
            ),
            text(
                _(
                    "If it happens again, tell your reseller this reference: **{reference_id}**",
                    reference_id=reference_id,
                ),
                subtle=True,
            ),
        ],
        [command_button(_("Menu"), "menu")],
    )
