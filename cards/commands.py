"""Cards of the one-line commands: a short choice when a command names several things, an answer
(with commands to try instead as buttons), "did you mean", the licence confirmations (their buttons
send what the assign card and the user card send, so the users task carries them out) and the
pointer to the 1:1 chat. Pure functions of the command service's views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cards.base import Card, card, command_button, facts, heading, submit, text
from cards.subscriptions import NO_PRICE
from cards.users import USERS_ASSIGN_DO, USERS_UNASSIGN
from services import formatting
from services.commands.people import FlowResult, OffboardingPlan, OnboardingPlan
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


ONBOARD, OFFBOARD = "cmd_onboard", "cmd_offboard"


def _input(field_id: str, label: str, value: str, *, required: bool = True, max_length: int = 256) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "Input.Text", "id": field_id, "label": label, "value": value}
    element["maxLength"] = max_length
    if required:
        element.update(isRequired=True, errorMessage=f"Enter the {label.lower()}")
    return element


def build_onboard_card(plan: OnboardingPlan, request_key: str) -> Card:
    """The new user (prefilled, editable), the licence, and the seat bought with it when none is free."""
    pool = plan.pool
    body: list[dict[str, Any]] = [heading(f"New user {plan.display_name} with {pool.name}")]
    body += [
        _input("first_name", "First name", plan.first_name, required=False, max_length=64),
        _input("last_name", "Last name", plan.last_name, required=False, max_length=64),
        _input("display_name", "Display name", plan.display_name),
        _input("user_name", "User name (before the @)", plan.user_name, max_length=64),
        {
            "type": "Input.ChoiceSet",
            "id": "domain",
            "label": "Domain",
            "value": plan.domains[0] if plan.domains else "",
            "choices": [{"title": f"@{domain}", "value": domain} for domain in plan.domains],
        },
        _input("usage_location", "Usage location (two letters)", plan.usage_location, max_length=2),
        _input("password_email", "E-mail the password to", plan.password_email, max_length=254),
    ]
    pairs = [("Licence", pool.name), ("Free now", f"{pool.available} of {pool.active} ({pool.consumed} assigned)")]
    data: dict[str, Any] = {"request_key": request_key, "licence": pool.licence_sku_id}
    title = "Create the user and assign the licence"
    seat = plan.seat
    if seat is not None:
        period = formatting.per_period(seat.billing_cycle)
        charge = seat.charge_now
        now = formatting.money(charge.amount, seat.currency) if charge is not None else NO_PRICE
        new_cost = formatting.money(seat.recurring_new, seat.currency) if seat.recurring_new is not None else NO_PRICE
        body.append(
            text(f"No {pool.name} licence is free, so one more seat of {seat.name} is bought with it:", color="Warning")
        )
        pairs += [
            ("Seats", f"{seat.current} → {seat.new}"),
            ("Charged now (pro rata)", now),
            (f"New cost {period}", new_cost),
        ]
        data["subscription_id"] = seat.subscription_id
        if plan.seat_needs_approver:
            body.append(
                text(
                    f"Buying the seat needs an approver under your spending policy ({plan.seat_needs_approver}): "
                    "the user is created now, and the seat and the licence wait for an approver's yes — "
                    "say **add 1 seat to " + seat.name + "** to ask one, then **assign**.",
                    color="Attention",
                )
            )
        title = "Buy the seat, create the user and assign the licence"
    body.append(facts(pairs))
    body.append(text("The password is generated and e-mailed; it is never shown here.", subtle=True))
    return card(body, [submit(title, ONBOARD, data, style="positive"), submit("Cancel", DROP)])


def build_offboard_card(plan: OffboardingPlan, request_key: str) -> Card:
    """What offboarding does, asked once; per freed seat the admin picks what becomes of it."""
    person = plan.person
    held = [seat.licence_name for seat in plan.seats] + list(plan.other_licences)
    body: list[dict[str, Any]] = [
        heading(f"Offboard {person.display_name}?"),
        text(person.user_principal_name, subtle=True),
        text(
            "1. **Block sign-in**: the password is replaced by one nobody is told (the account and its "
            "mailbox stay, and can be handed over).\n"
            f"2. **Remove every licence**: {', '.join(held) if held else 'none held'}.\n"
            "3. **Each freed seat**: as you choose below."
        ),
    ]
    for seat in plan.seats:
        names = (
            seat.licence_name
            if seat.subscription_name == seat.licence_name
            else (f"{seat.licence_name} — {seat.subscription_name}")
        )
        body.append(text(f"{names} ({formatting.plural(seat.quantity, 'seat', 'seats')})", weight="Bolder"))
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": f"seat_{seat.licence_sku_id}",
                "label": "The freed seat",
                "style": "expanded",
                "value": f"{seat.subscription_id}:{seat.default}",
                "choices": [
                    {"title": label, "value": f"{seat.subscription_id}:{value}"} for value, label in seat.choices
                ],
            }
        )
    data = {"user_id": person.user_id, "request_key": request_key}
    return card(
        body, [submit(f"Offboard {person.display_name}", OFFBOARD, data, style="destructive"), submit("Cancel", DROP)]
    )


def build_steps_card(title: str, result: FlowResult, retry: Mapping[str, Any] | None = None) -> Card:
    """Each step's outcome; when one failed, Retry runs the same card again (done steps are skipped)."""
    body: list[dict[str, Any]] = [heading(title)]
    for step in result.steps:
        mark = "✔" if step.ok else "✖"
        body.append(text(f"{mark} **{step.name}**: {step.message}", color=None if step.ok else "Attention"))
    if result.ok or retry is None:
        return card(body)
    body.append(
        text("Nothing after the failed step was done. Retry when the cause is fixed; done steps are not repeated.")
    )
    return card(
        body,
        [submit("Retry", str(retry["verb"]), {k: v for k, v in retry.items() if k != "verb"}), submit("Cancel", DROP)],
    )
