"""Cards of the one-line commands: a short choice when a command names several things, an answer
(with commands to try instead as buttons), "did you mean", the licence confirmations (their buttons
send what the assign card and the user card send, so the users task carries them out) and the
pointer to the 1:1 chat. Pure functions of the command service's views."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cards.base import Card, card, command_button, facts, heading, submit, text
from cards.users import USERS_ASSIGN_DO, USERS_UNASSIGN
from services import formatting
from services.commands.service import Answer, Choose, LicenceAction, a_or_an

PICK, DROP = "cmd_pick", "cmd_drop"
MAX_SUGGESTIONS = 3


def build_choice_card(choice: Choose) -> Card:
    """One button per option; the pick resolves the command again with it."""
    rows = [
        {
            "type": "Container",
            "style": "emphasis",
            "spacing": "Small",
            "items": [
                text(f"**{option.title}**"),
                {**text(option.detail, subtle=True), "spacing": "None"},
                {
                    "type": "ActionSet",
                    "actions": [
                        submit(f"This one: {option.title}"[:60], PICK, {"slot": choice.slot, "pin": option.pin})
                    ],
                },
            ],
        }
        for option in choice.options
    ]
    return card([heading(choice.question), *rows], [submit("None of these", DROP)])


def build_answer_card(answer: Answer) -> Card:
    body: list[dict[str, Any]] = []
    if answer.title:
        body.append(heading(answer.title))
    body.append(text(answer.text))
    if answer.lines:
        body.append(text("\n".join(f"- {line}" for line in answer.lines)))
    actions = [command_button(suggestion[:60], suggestion) for suggestion in answer.suggestions[:MAX_SUGGESTIONS]]
    return card(body, actions)


def build_did_you_mean_card(message: str, suggestions: Sequence[str]) -> Card:
    body = [text(message)]
    if suggestions:
        body.append(text("Did you mean:", weight="Bolder"))
    actions = [command_button(suggestion[:60], suggestion) for suggestion in suggestions[:MAX_SUGGESTIONS]]
    actions.append(command_button("Help", "help"))
    return card(body, actions)


def build_licence_confirm_card(action: LicenceAction, request_key: str, *, note: str = "") -> Card:
    """Assign one licence to one person, or take it away: what happens, the pool's numbers."""
    person, pool = action.person, action.pool
    sources = ", ".join(
        f"{sub.name} ({formatting.plural(sub.quantity, 'seat', 'seats')})" for sub in pool.subscriptions
    )
    pairs = [
        ("Person", f"{person.display_name} ({person.user_principal_name})"),
        ("Licence", pool.name),
        ("Free now", f"{pool.available} of {pool.active} ({pool.consumed} assigned)"),
    ]
    if sources:
        pairs.append(("From", sources))
    body: list[dict[str, Any]] = []
    assigning = action.kind.value == "assign"
    if assigning:
        body.append(heading(f"Give {person.display_name} {a_or_an(pool.name)} {pool.name} licence?"))
    else:
        body.append(heading(f"Take the {pool.name} licence from {person.display_name}?"))
    if note:
        body.append(text(note, subtle=True))
    body.append(facts(pairs))
    if assigning:
        body.append(text("No extra cost: it uses a seat you already pay for.", subtle=True))
        if action.usage_location:
            body.append(
                {
                    "type": "Input.Text",
                    "id": "usage_location",
                    "label": f"{person.display_name} has no usage location, which Microsoft needs: the country "
                    "they work in (two letters)",
                    "value": action.usage_location,
                    "maxLength": 2,
                    "isRequired": True,
                    "errorMessage": "Enter a two-letter country code",
                }
            )
        data = {"user_ids": [person.user_id], "licence": pool.licence_sku_id, "request_key": request_key}
        confirm = submit("Assign the licence", USERS_ASSIGN_DO, data, style="positive")
    else:
        body.append(
            text(
                "The seat stays bought and billed: it is free for someone else. To stop paying for it, "
                "lower the seats of the subscription.",
                subtle=True,
            )
        )
        data = {"user_id": person.user_id, "licences": [pool.licence_sku_id], "request_key": request_key}
        confirm = submit("Remove the licence", USERS_UNASSIGN, data, style="destructive")
    return card(body, [confirm, submit("Cancel", DROP)])


def build_continue_privately_card(command: str) -> Card:
    """Sent to the 1:1 chat when a command about people is said in a channel."""
    return card(
        [
            heading("Let's do this here"),
            text(f"“{command}” is about your tenant's users, so I answer it here in our 1:1 chat."),
        ],
        [command_button("Run it here", command)],
    )
