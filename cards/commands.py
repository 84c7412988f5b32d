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
from services.commands.service import Answer, Choose, LicenceAction
from services.i18n import _
from services.users.licences import PoolView

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
                        submit(
                            _("This one: {title}", title=option.title)[:60],
                            PICK,
                            {"slot": choice.slot, "pin": option.pin},
                        )
                    ],
                },
            ],
        }
        for option in choice.options
    ]
    return card([heading(choice.question), *rows], [submit(_("None of these"), DROP)])


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
        body.append(text(_("Did you mean:"), weight="Bolder"))
    actions = [command_button(suggestion[:60], suggestion) for suggestion in suggestions[:MAX_SUGGESTIONS]]
    actions.append(command_button(_("Help"), "help"))
    return card(body, actions)


def _pool_pairs(pool: PoolView) -> list[tuple[str, str]]:
    """The licence and how many of its seats are free: the facts both licence cards show."""
    free = _(
        "{available} of {active} ({consumed} assigned)",
        available=pool.available,
        active=pool.active,
        consumed=pool.consumed,
    )
    return [(_("Licence"), pool.name), (_("Free now"), free)]


def build_licence_confirm_card(action: LicenceAction, request_key: str, *, note: str = "") -> Card:
    """Assign one licence to one person, or take it away: what happens, the pool's numbers."""
    person, pool = action.person, action.pool
    sources = ", ".join(f"{sub.name} ({formatting.seats(sub.quantity)})" for sub in pool.subscriptions)
    pairs = [(_("Person"), f"{person.display_name} ({person.user_principal_name})"), *_pool_pairs(pool)]
    if sources:
        pairs.append((_("From"), sources))
    body: list[dict[str, Any]] = []
    assigning = action.kind.value == "assign"
    if assigning:
        body.append(
            heading(_("Give {display_name} a licence for {name}?", display_name=person.display_name, name=pool.name))
        )
    else:
        body.append(
            heading(_("Take the {name} licence from {display_name}?", name=pool.name, display_name=person.display_name))
        )
    if note:
        body.append(text(note, subtle=True))
    body.append(facts(pairs))
    if assigning:
        body.append(text(_("No extra cost: it uses a seat you already pay for."), subtle=True))
        if action.usage_location:
            body.append(
                {
                    "type": "Input.Text",
                    "id": "usage_location",
                    "label": _(
                        "{display_name} has no usage location, which Microsoft needs: the country they work in "
                        "(two letters)",
                        display_name=person.display_name,
                    ),
                    "value": action.usage_location,
                    "maxLength": 2,
                    "isRequired": True,
                    "errorMessage": _("Enter a two-letter country code"),
                }
            )
        data = {"user_ids": [person.user_id], "licence": pool.licence_sku_id, "request_key": request_key}
        confirm = submit(_("Assign the licence"), USERS_ASSIGN_DO, data, style="positive")
    else:
        body.append(
            text(
                _(
                    "The seat stays bought and billed: it is free for someone else. To stop paying for it, "
                    "lower the seats of the subscription."
                ),
                subtle=True,
            )
        )
        data = {"user_id": person.user_id, "licences": [pool.licence_sku_id], "request_key": request_key}
        confirm = submit(_("Remove the licence"), USERS_UNASSIGN, data, style="destructive")
    return card(body, [confirm, submit(_("Cancel"), DROP)])


def build_continue_privately_card(command: str) -> Card:
    """Sent to the 1:1 chat when a command about people is said in a channel."""
    return card(
        [
            heading(_("Let's do this here")),
            text(_("“{command}” is about your tenant's users, so I answer it here in our 1:1 chat.", command=command)),
        ],
        [command_button(_("Run it here"), command)],
    )


ONBOARD, OFFBOARD = "cmd_onboard", "cmd_offboard"


def _input(field_id: str, label: str, value: str, *, required: bool = True, max_length: int = 256) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "Input.Text", "id": field_id, "label": label, "value": value}
    element["maxLength"] = max_length
    if required:
        element.update(isRequired=True, errorMessage=_("Enter: {label}", label=label))
    return element


def build_onboard_card(plan: OnboardingPlan, request_key: str) -> Card:
    """The new user (prefilled, editable), the licence, and the seat bought with it when none is free."""
    pool = plan.pool
    body: list[dict[str, Any]] = [
        heading(_("New user {display_name} with {name}", display_name=plan.display_name, name=pool.name))
    ]
    body += [
        _input("first_name", _("First name"), plan.first_name, required=False, max_length=64),
        _input("last_name", _("Last name"), plan.last_name, required=False, max_length=64),
        _input("display_name", _("Display name"), plan.display_name),
        _input("user_name", _("User name (before the @)"), plan.user_name, max_length=64),
        {
            "type": "Input.ChoiceSet",
            "id": "domain",
            "label": _("Domain"),
            "value": plan.domains[0] if plan.domains else "",
            "choices": [{"title": f"@{domain}", "value": domain} for domain in plan.domains],
        },
        _input("usage_location", _("Usage location (two letters)"), plan.usage_location, max_length=2),
        _input("password_email", _("E-mail the password to"), plan.password_email, max_length=254),
    ]
    pairs = _pool_pairs(pool)
    data: dict[str, Any] = {"request_key": request_key, "licence": pool.licence_sku_id}
    title = _("Create the user and assign the licence")
    seat = plan.seat
    if seat is not None:
        period = formatting.per_period(seat.billing_cycle)
        charge = seat.charge_now
        now = formatting.money(charge.amount, seat.currency) if charge is not None else _(NO_PRICE)
        new_cost = (
            formatting.money(seat.recurring_new, seat.currency) if seat.recurring_new is not None else _(NO_PRICE)
        )
        body.append(
            text(
                _(
                    "No {name} licence is free, so one more seat of {name2} is bought with it:",
                    name=pool.name,
                    name2=seat.name,
                ),
                color="Warning",
            )
        )
        pairs += [
            (_("Seats"), f"{seat.current} → {seat.new}"),
            (_("Charged now (pro rata)"), now),
            (_("New cost {period}", period=period), new_cost),
        ]
        data["subscription_id"] = seat.subscription_id
        if plan.seat_needs_approver:
            body.append(
                text(
                    _(
                        "Buying the seat needs an approver under your spending policy ({seat_needs_approver}): the "
                        "user is created now, and the seat and the licence wait for an approver's yes — say **add "
                        "1 seat to ",
                        seat_needs_approver=plan.seat_needs_approver,
                    )
                    + seat.name
                    + _("** to ask one, then **assign**."),
                    color="Attention",
                )
            )
        title = _("Buy the seat, create the user and assign the licence")
    body.append(facts(pairs))
    body.append(text(_("The password is generated and e-mailed; it is never shown here."), subtle=True))
    return card(body, [submit(title, ONBOARD, data, style="positive"), submit(_("Cancel"), DROP)])


def build_offboard_card(plan: OffboardingPlan, request_key: str) -> Card:
    """What offboarding does, asked once; per freed seat the admin picks what becomes of it."""
    person = plan.person
    held = [seat.licence_name for seat in plan.seats] + list(plan.other_licences)
    body: list[dict[str, Any]] = [
        heading(_("Offboard {display_name}?", display_name=person.display_name)),
        text(person.user_principal_name, subtle=True),
        text(
            _(
                "1. **Block sign-in**: the password is replaced by one nobody is told (the account and its "
                "mailbox stay, and can be handed over).\n2. **Remove every licence**: {value}.\n3. **Each "
                "freed seat**: as you choose below.",
                value=", ".join(held) if held else _("none held"),
            )
        ),
    ]
    for seat in plan.seats:
        names = (
            seat.licence_name
            if seat.subscription_name == seat.licence_name
            else (f"{seat.licence_name} — {seat.subscription_name}")
        )
        body.append(text(f"{names} ({formatting.seats(seat.quantity)})", weight="Bolder"))
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": f"seat_{seat.licence_sku_id}",
                "label": _("The freed seat"),
                "style": "expanded",
                "value": f"{seat.subscription_id}:{seat.default}",
                "choices": [
                    {"title": label, "value": f"{seat.subscription_id}:{value}"} for value, label in seat.choices
                ],
            }
        )
    data = {"user_id": person.user_id, "request_key": request_key}
    return card(
        body,
        [
            submit(_("Offboard {display_name}", display_name=person.display_name), OFFBOARD, data, style="destructive"),
            submit(_("Cancel"), DROP),
        ],
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
        text(_("Nothing after the failed step was done. Retry when the cause is fixed; done steps are not repeated."))
    )
    return card(
        body,
        [
            submit(_("Retry"), str(retry["verb"]), {k: v for k, v in retry.items() if k != "verb"}),
            submit(_("Cancel"), DROP),
        ],
    )
