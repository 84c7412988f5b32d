"""Warning cards posted to an organisation's admins (Action.Execute: a click answers with the card the
admin should now see). Pure functions of a notice (`services.warnings.service.NoticeView`).

- seat window closing: the seats still refundable and until when; **Remove N seats** (the change-
  quantity preview, then confirm) or **Keep as is**;
- renewal coming: seats, assigned, what the renewal costs at the reseller's price; **Keep as is**,
  **Renew with N seats** (schedules the lower quantity), **Switch term/billing** (the terms and billing
  frequencies side by side, then one is scheduled), **Turn auto-renew off**;
- idle licences: seats unassigned and users not signed in, priced per month; **Unassign** per user,
  confirmed first;
- the monthly licence overview (to admins and billing readers): per product seats, assigned, idle,
  cost per month and the change since last month, the renewals of the next 60 days; **Download as
  Excel** (a single-use link, as billing's exports).

A card whose action can no longer be done says why and has no button; a card acted on says what was
done, by whom and when.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from cards.base import Card, card, facts, heading, submit, text
from services import formatting
from services.i18n import _, ngettext
from services.subscriptions import QuantityPlan
from services.warnings.rules import Kind, WarningSettings
from services.warnings.service import NoticeView, TermSwitchPlan
from services.warnings.settings import settings_record

REMOVE, CONFIRM_REMOVE, KEEP = "warn_remove", "warn_remove_confirm", "warn_keep"
RENEW_WITH, AUTORENEW_OFF = "warn_renew_with", "warn_autorenew_off"
SWITCH_TERM, CONFIRM_TERM = "warn_switch_term", "warn_switch_term_confirm"
UNASSIGN, CONFIRM_UNASSIGN = "warn_unassign", "warn_unassign_confirm"
REFRESH, BACK = "warn_refresh", "warn_back"
OVERVIEW_XLSX = "overview_xlsx"


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def _money(value: Any, currency: str) -> str:
    if value in (None, ""):
        return _("no price set — ask your reseller")
    return formatting.money(Decimal(str(value)), currency)


def execute(title: str, verb: str, data: Mapping[str, Any], style: str | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "Action.Execute", "title": title, "verb": verb, "data": dict(data)}
    if style:
        action["style"] = style
    return action


def _with_refresh(result: Card, notice: NoticeView, user_ids: Sequence[str]) -> Card:
    """Teams re-asks the bot for the card when an admin named here opens it: it then shows what is
    still possible (a window that closed meanwhile has no button any more)."""
    result["refresh"] = {
        "action": {"type": "Action.Execute", "title": _("Refresh"), "verb": REFRESH, "data": {"notice_id": notice.id}},
        "userIds": list(user_ids)[:60],
    }
    return result


def _renews_on(notice: NoticeView) -> str:
    """The renewal date as the subscriptions list shows it: the term's last day (Microsoft's
    commitmentEndDate; the new term starts at midnight UTC after it)."""
    day = notice.facts.get("renews_on")
    return (
        formatting.date(date.fromisoformat(str(day))) if day else formatting.date(_when(notice.facts.get("renews_at")))
    )


def title_of(notice: NoticeView) -> str:
    name = str(notice.facts.get("name", ""))
    if notice.kind is Kind.SEAT_WINDOW:
        return _("Seats you can still return: {name}", name=name)
    if notice.kind is Kind.RENEWAL:
        return _("{name} renews on {renews_on}", name=name, renews_on=_renews_on(notice))
    return _("Idle licences: {name}", name=name)


def _seat_body(notice: NoticeView) -> list[dict[str, Any]]:
    f = notice.facts
    closes = formatting.datetime_utc(_when(f.get("closes_at")))
    currency = str(f.get("currency", ""))
    unassigned = f.get("unassigned")
    lines = [
        text(
            _(
                "**{seats}** of {name} can still be removed with a refund until **{closes}**. Microsoft "
                "takes seats back only within 7 days of adding them; after that they are paid until the "
                "renewal.",
                seats=formatting.seats(int(f["removable"])),
                name=f["name"],
                closes=closes,
            )
        ),
        facts(
            [
                (_("Seats"), formatting.seats(int(f["quantity"]))),
                (_("Unassigned now"), "unknown" if unassigned is None else str(unassigned)),
                (_("Refundable now"), formatting.seats(int(f["refundable"]))),
                (_("Window closes"), closes),
                (
                    _("Price"),
                    formatting.unit_price(Decimal(str(f["unit_price"])), currency, str(f.get("billing_cycle", "")))
                    if f.get("unit_price")
                    else _money(None, currency),
                ),
            ]
        ),
    ]
    return lines


def _renewal_body(notice: NoticeView) -> list[dict[str, Any]]:
    f = notice.facts
    currency = str(f.get("currency", ""))
    period = formatting.per_period(str(f.get("billing_cycle", "")))
    renewing = int(f["renewing_quantity"])
    pairs = [
        (_("Renews on"), _renews_on(notice)),
        (_("Seats now"), formatting.seats(int(f["quantity"]))),
    ]
    if f.get("scheduled_quantity") is not None:
        pairs.append((_("Scheduled for the renewal"), formatting.seats(int(f["scheduled_quantity"]))))
    if f.get("assigned") is not None:
        pairs.append((_("Assigned to users"), str(f["assigned"])))
        pairs.append((_("Unassigned at renewal"), str(f["unassigned"])))
    term = formatting.term(str(f.get("term_duration", "")))
    scheduled = _(" (as scheduled)") if f.get("term_scheduled") else ""
    pairs.append(
        (
            _("Term"),
            _(
                "{term}, billed {billed}{scheduled}",
                term=term,
                billed=formatting.billed(str(f.get("billing_cycle", ""))),
                scheduled=scheduled,
            ),
        )
    )
    pairs.append(
        (
            _("Renewal cost {period}", period=period),
            _(
                "{money} for {seats}",
                money=_money(f.get("cost_per_period"), currency),
                seats=formatting.seats(renewing),
            ),
        )
    )
    pairs.append((_("For the whole term"), _money(f.get("cost_per_term"), currency)))
    if f.get("price_changes"):
        pairs.append(
            (
                _("Price per seat"),
                _(
                    "{money} now → {money2} from the renewal",
                    money=_money(f.get("unit_price"), currency),
                    money2=_money(f.get("renewal_unit_price"), currency),
                ),
            )
        )
    lock = formatting.datetime_utc(_when(f.get("lock_at")))
    return [
        text(
            _(
                "It renews automatically with **{seats}** for another term at the price below.",
                seats=formatting.seats(renewing),
            )
        ),
        facts(pairs),
        text(
            _(
                "Changes must be in by **{lock}**: Microsoft locks the subscription for the 24 hours before it renews.",
                lock=lock,
            ),
            subtle=True,
        ),
    ]


def _idle_body(notice: NoticeView, *, with_buttons: bool) -> list[dict[str, Any]]:
    f = notice.facts
    currency = str(f.get("currency", ""))
    days = int(f.get("idle_days", 30))
    idle, inactive = int(f.get("idle_seats", 0)), int(f.get("inactive_count", 0))
    parts = []
    if idle:
        parts.append(_("**{seats}** unassigned for more than {days} days", seats=formatting.seats(idle), days=days))
    if inactive:
        users = ngettext("{n} licensed user", "{n} licensed users", inactive)
        parts.append(_("**{users}** not signed in for {days} days", users=users, days=days))
    body: list[dict[str, Any]] = [
        text(
            _(
                "{idle} — {money} a month at your price.",
                idle=_("{seats} and {users}", seats=parts[0], users=parts[1]) if len(parts) == 2 else "".join(parts),
                money=_money(f.get("monthly_cost"), currency),
            )
        ),
        facts(
            [
                (_("Price"), _("{money} per licence per month", money=_money(f.get("monthly_price"), currency))),
                (_("Reassign now"), formatting.seats(idle) + (_(" (free to give to someone)") if idle else "")),
                (
                    _("Reducible at renewal"),
                    _("up to {seats}", seats=formatting.seats(int(f.get("reducible_at_renewal", 0))))
                    + (
                        _(" on {date}", date=formatting.date(_when(f.get("next_renewal"))))
                        if f.get("next_renewal")
                        else ""
                    ),
                ),
            ]
        ),
    ]
    done = set(f.get("unassigned_users", []))
    for user in f.get("inactive_users", []):
        last = formatting.date(_when(user.get("last_sign_in")))
        column: list[dict[str, Any]] = [
            text(f"{user['name']} ({user['upn']})", weight="Bolder"),
            text(_("last signed in {last}", last=last), subtle=True),
        ]
        row: dict[str, Any] = {
            "type": "ColumnSet",
            "separator": True,
            "columns": [{"type": "Column", "width": "stretch", "items": column}],
        }
        if user["user_id"] in done:
            row["columns"].append(
                {"type": "Column", "width": "auto", "items": [text(_("✓ licence removed"), color="Good")]}
            )
        elif with_buttons:
            row["columns"].append(
                {
                    "type": "Column",
                    "width": "auto",
                    "items": [
                        {
                            "type": "ActionSet",
                            "actions": [
                                execute(_("Unassign"), UNASSIGN, {"notice_id": notice.id, "user_id": user["user_id"]})
                            ],
                        }
                    ],
                }
            )
        body.append(row)
    if inactive > len(f.get("inactive_users", [])):
        body.append(
            text(_("…and {value} more; see **users**.", value=inactive - len(f["inactive_users"])), subtle=True)
        )
    return body


def _body(notice: NoticeView, *, with_buttons: bool = True) -> list[dict[str, Any]]:
    if notice.kind is Kind.SEAT_WINDOW:
        return _seat_body(notice)
    if notice.kind is Kind.RENEWAL:
        return _renewal_body(notice)
    return _idle_body(notice, with_buttons=with_buttons)


def _actions(notice: NoticeView) -> list[dict[str, Any]]:
    ids = {"notice_id": notice.id}
    f = notice.facts
    if notice.kind is Kind.SEAT_WINDOW:
        return [
            execute(_("Remove {seats}", seats=formatting.seats(int(f["removable"]))), REMOVE, ids, "positive"),
            execute(_("Keep as is"), KEEP, ids),
        ]
    if notice.kind is Kind.RENEWAL:
        actions = [execute(_("Keep as is"), KEEP, ids)]
        if f.get("suggested_quantity"):
            suggested = int(f["suggested_quantity"])
            actions.append(
                execute(
                    _("Renew with {seats}", seats=formatting.seats(suggested)),
                    RENEW_WITH,
                    {**ids, "quantity": suggested},
                    "positive",
                )
            )
        actions.append(execute(_("Switch term/billing"), SWITCH_TERM, ids))
        actions.append(execute(_("Turn auto-renew off"), AUTORENEW_OFF, ids))
        return actions
    return []


def build_warning_card(notice: NoticeView, *, user_ids: Sequence[str] = (), problem: str = "") -> Card:
    """The warning as posted: its facts and the actions still possible. `problem`: why an action
    could not be done just now (the buttons stay when it can be tried again)."""
    body = [heading(title_of(notice)), *_body(notice)]
    if problem:
        body.append(text(problem, color="Attention", weight="Bolder"))
    return _with_refresh(card(body, _actions(notice)), notice, user_ids)


def build_too_late_card(notice: NoticeView, reason: str, *, user_ids: Sequence[str] = ()) -> Card:
    """The warning once its action can no longer be done: why, and no button."""
    body = [
        heading(title_of(notice)),
        *_body(notice, with_buttons=False),
        text(reason, color="Warning", weight="Bolder"),
    ]
    return _with_refresh(card(body), notice, user_ids)


def build_record_card(notice: NoticeView, *, user_ids: Sequence[str] = ()) -> Card:
    """The warning once acted on: what was done, by whom, when."""
    line = f"✓ {notice.outcome.rstrip('.')} — {notice.acted_by}, {formatting.datetime_utc(notice.acted_at)}"
    body = [heading(title_of(notice)), *_body(notice, with_buttons=False), text(line, color="Good", weight="Bolder")]
    return _with_refresh(card(body), notice, user_ids)


def build_removal_preview_card(notice: NoticeView, plan: QuantityPlan, key: str) -> Card:
    """Remove the seats: the change-quantity preview (the refund as the bill will show it)."""
    seats = plan.current - plan.new
    period = formatting.per_period(plan.billing_cycle)
    pairs = [(_("Seats"), f"{plan.current} → {plan.new}")]
    if plan.charge_now is not None:
        pairs.append((_("Refunded now (pro rata)"), _money(abs(plan.charge_now.amount), plan.currency)))
    pairs.append((_("New cost {period}", period=period), _money(plan.recurring_new, plan.currency)))
    if plan.refundable_until is not None:
        until = formatting.datetime_utc(plan.refundable_until)
        pairs.append(
            (_("Refund window"), _("{seats} until {until}", seats=formatting.seats(plan.refundable), until=until))
        )
    body = [
        heading(_("Remove {seats} of {name}?", seats=formatting.seats(seats), name=plan.name)),
        facts(pairs),
        text(_("Charges follow Microsoft's billing rules; the bill shows the exact lines."), subtle=True),
    ]
    data = {"notice_id": notice.id, "quantity": plan.new, "etag": plan.etag, "request_key": key}
    return card(
        body,
        [
            execute(_("Remove {seats}", seats=formatting.seats(seats)), CONFIRM_REMOVE, data, "positive"),
            execute(_("Keep as is"), KEEP, {"notice_id": notice.id}),
        ],
    )


def _option_title(term_duration: str, billing_cycle: str) -> str:
    return _(
        "{term} term, billed {billed}", term=formatting.term(term_duration), billed=formatting.billed(billing_cycle)
    )


def build_term_switch_card(notice: NoticeView, plan: TermSwitchPlan) -> Card:
    """Switch term/billing: every term and billing frequency it can renew into, side by side at the
    reseller's price on the renewal day, one button per option other than the current one."""
    columns = []
    buttons = []
    for option in plan.options:
        label = _option_title(option.term_duration, option.billing_cycle)
        period = formatting.per_period(option.billing_cycle)
        items: list[dict[str, Any]] = [
            text(label + (_(" (now)") if option.current else ""), weight="Bolder"),
            text(f"{formatting.money(option.per_period, option.currency)} {period}"),
            text(_("{money} per year", money=formatting.money(option.per_year, option.currency)), subtle=True),
            text(
                _(
                    "{money} per seat {period}",
                    money=formatting.money(option.unit_price, option.currency),
                    period=period,
                ),
                subtle=True,
            ),
        ]
        columns.append({"type": "Column", "width": "stretch", "items": items})
        if not option.current:
            data = {
                "notice_id": notice.id,
                "term_duration": option.term_duration,
                "billing_cycle": option.billing_cycle,
            }
            buttons.append(execute(_("Renew: {label}", label=label), CONFIRM_TERM, data))
    when = formatting.date(plan.renews_on) if plan.renews_on else _("its renewal")
    body = [
        heading(_("Switch term or billing of {name}", name=plan.name)),
        text(
            _(
                "From the renewal on {when}, for {seats}, at your reseller's price then. The change is "
                "scheduled with Microsoft for the renewal; until then nothing changes.",
                when=when,
                seats=formatting.seats(plan.quantity),
            ),
        ),
        {"type": "ColumnSet", "columns": columns},
        text(
            _(
                "A monthly term can be lowered every month; an annual or 3-year term keeps its seats for the whole "
                "term (only new seats have a 7-day refund window)."
            ),
            subtle=True,
        ),
    ]
    return card(body, [*buttons, execute(_("Back"), BACK, {"notice_id": notice.id})])


def build_unassign_confirm_card(notice: NoticeView, user: Mapping[str, Any]) -> Card:
    last = formatting.date(_when(user.get("last_sign_in")))
    body = [
        heading(_("Remove {get} from {name}?", get=notice.facts.get("name") or _("the licence"), name=user["name"])),
        text(
            _(
                "{name} ({upn}) last signed in {last}. The licence goes back to the pool: you can give it "
                "to someone else now, or schedule fewer seats for the renewal.",
                name=user["name"],
                upn=user["upn"],
                last=last,
            )
        ),
    ]
    data = {"notice_id": notice.id, "user_id": user["user_id"]}
    return card(
        body,
        [
            execute(_("Unassign"), CONFIRM_UNASSIGN, data, "destructive"),
            execute(_("Back"), BACK, {"notice_id": notice.id}),
        ],
    )


SAVE_SETTINGS, CLOSE_SETTINGS = "warnings_settings_save", "warnings_settings_close"


def build_settings_card(
    settings: WarningSettings, *, entered: Mapping[str, str] | None = None, error: str = "", notice: str = ""
) -> Card:
    """The organisation's warning settings as a form (admins). `entered`: what was submitted, shown
    again with `error` when a value was refused (nothing was saved then)."""
    values = dict(entered or {})
    record = settings_record(settings)

    def value(key: str, default: str) -> str:
        return values.get(key, default)

    def toggle(kind: Kind, title: str) -> dict[str, Any]:
        on = "true" if kind in settings.enabled else "false"
        return {
            "type": "Input.Toggle",
            "id": f"on_{kind.value}",
            "title": title,
            "value": value(f"on_{kind.value}", on),
            "valueOn": "true",
            "valueOff": "false",
        }

    def field(key: str, label: str, default: str, placeholder: str) -> dict[str, Any]:
        return {
            "type": "Input.Text",
            "id": key,
            "label": label,
            "value": value(key, default),
            "placeholder": placeholder,
        }

    body: list[dict[str, Any]] = [heading(_("Warnings before money is locked in"))]
    if notice:
        body.append(text(notice, color="Good"))
    if error:
        body.append(text(error, color="Attention", weight="Bolder"))
    body += [
        text(
            _(
                "The bot tells your organisation's admins in their chat with it, in time to act, "
                "with the fix on the card."
            ),
            subtle=True,
        ),
        toggle(Kind.SEAT_WINDOW, _("Seat window closing (seats refundable only within 7 days of being added)")),
        toggle(Kind.RENEWAL, _("Renewal coming (fewer seats can be scheduled until 24 hours before)")),
        toggle(Kind.IDLE, _("Idle licences (unassigned seats, licensed users not signed in)")),
        field(
            "leads",
            _("Renewal warnings, days before the renewal"),
            ",".join(map(str, settings.renewal_lead_days)),
            "30,7",
        ),
        field(
            "seat_window_hours", _("Seat-window warning, hours before it closes"), str(settings.seat_window_hours), "48"
        ),
        field("idle_days", _("Idle after (days)"), str(settings.idle_days), "30"),
        field(
            "excluded",
            _("Offers left out of idle warnings (PRODUCT:SKU, comma-separated)"),
            ", ".join(record["excluded_skus"]),
            "CFQ7TTC0LH18:0001",
        ),
        field("quiet", _("Quiet hours (e.g. 20-08, or off)"), record["quiet_hours"] or "off", "20-08"),
        field("timezone", _("Time zone"), settings.timezone, _("Europe/Oslo")),
    ]
    return card(body, [submit(_("Save"), SAVE_SETTINGS, style="positive"), submit(_("Done"), CLOSE_SETTINGS)])


def _change(value: Any) -> str:
    if value is None or int(value) == 0:
        return ""
    return f" ({int(value):+d})"


def _amounts(by_currency: Mapping[str, Any]) -> str:
    return ", ".join(_money(amount, currency) for currency, amount in sorted(by_currency.items())) or _("no price set")


def build_overview_card(overview: Mapping[str, Any], organisation: str = "") -> Card:
    """The monthly licence overview; its XLSX comes through a single-use download link."""
    month = formatting.month(date.fromisoformat(f"{overview['month']}-01"))
    body: list[dict[str, Any]] = [heading(_("Licence overview — {month}", month=month))]
    if organisation:
        body.append(text(organisation, subtle=True))
    if not overview["first"]:
        body.append(text(_("Changes since last month's overview are in brackets."), subtle=True))
    for product in overview["products"]:
        body.append(text(str(product["name"]), weight="Bolder"))
        body.append(
            facts(
                [
                    (_("Seats"), f"{product['seats']}{_change(product['seats_change'])}"),
                    (_("Assigned"), f"{product['assigned']}{_change(product['assigned_change'])}"),
                    (
                        _("Idle"),
                        _(
                            "{idle} ({unassigned} unassigned, {inactive_users} not signed in)",
                            idle=product["idle"],
                            unassigned=product["unassigned"],
                            inactive_users=product["inactive_users"],
                        ),
                    ),
                    (_("Cost per month"), _amounts(product["cost_per_month"])),
                ]
            )
        )
    if not overview["products"]:
        body.append(text(_("No licences.")))
    if overview["gone"]:
        body.append(text(_("No longer held since last month: {join}.", join=", ".join(overview["gone"]))))
    body.append(text(_("Total per month: {amounts}", amounts=_amounts(overview["total_per_month"])), weight="Bolder"))
    body.append(heading(_("Renewals in the next 60 days")))
    renewals = [
        (
            formatting.date(date.fromisoformat(item["renews_on"])),
            f"{item['name']}: "
            + (
                _(
                    "renews with {seats}, {money} {per_period}",
                    seats=formatting.seats(int(item["quantity"])),
                    money=_money(item["cost_per_period"], item["currency"]),
                    per_period=formatting.per_period(item["billing_cycle"]),
                )
                if item["renews"]
                else _("ends (does not renew)")
            ),
        )
        for item in overview["renewals"]
    ]
    body.append(facts(renewals) if renewals else text(_("None.")))
    return card(body, [execute(_("Download as Excel"), OVERVIEW_XLSX, {"month": overview["month"]})])
