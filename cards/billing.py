"""Billing cards: the report (cycle → subscriptions → detail lines, expandable in place), the
range chooser, a product's spend, the export link, and the Teams file attachments (file consent,
file info) and message-extension results. Pure: view models in, dicts out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cards.base import Card, card, command_button, facts, heading, text
from services.i18n import N_, _, ngettext

# Teams refuses messages over ~28 KB; keep a margin for the activity envelope.
CARD_BUDGET = 24_000
EXPORT_VERB = "billing_export"
RANGE_VERB = "billing_range"
FILE_CONSENT = "application/vnd.microsoft.teams.card.file.consent"
FILE_INFO = "application/vnd.microsoft.teams.card.file.info"
ADAPTIVE = "application/vnd.microsoft.card.adaptive"
THUMBNAIL = "application/vnd.microsoft.card.thumbnail"


@dataclass(frozen=True)
class DetailView:
    label: str  # "Pro-rata increase"
    product: str  # shown for add-on lines
    quantity: str
    unit_price: str
    days: str  # "22/31 days" or ""
    amount: str
    unpriced: bool = False


@dataclass(frozen=True)
class SubscriptionView:
    subscription_id: str
    product: str
    amount: str
    details: Sequence[DetailView]  # may be formatted as read (dialogs.billing.Formatted)
    unpriced: bool = False


@dataclass(frozen=True)
class CycleView:
    title: str  # "September 2026"
    period: str  # "Sep 1 – 30, 2026"
    report_date: str
    total: str
    issued: bool
    subscriptions: Sequence[SubscriptionView]  # largest first; may be formatted as read
    unpriced: int = 0


@dataclass(frozen=True)
class ReportView:
    title: str
    organisation: str
    cycles: tuple[CycleView, ...]
    first_month: str
    last_month: str
    grand_total: str = ""
    note: str = ""  # e.g. no service in the first months asked for


@dataclass(frozen=True)
class SpendView:
    product: str
    label: str  # "the last 12 months"
    rows: tuple[tuple[str, str], ...]  # (cycle title, amount)
    total: str
    full_report_command: str


@dataclass(frozen=True)
class RangeChoiceView:
    months: tuple[tuple[str, str], ...] = ()  # (value "2026-09", title "September 2026"), newest first
    first_month: str = ""
    last_month: str = ""
    error: str = ""
    older: str = ""  # the typed form of an older month, when there are bills before the oldest shown


def _execute(title: str, verb: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "Action.Execute", "title": title, "verb": verb, "data": {"verb": verb, **data}}


def export_actions(first_month: str, last_month: str) -> list[dict[str, Any]]:
    data = {"first_month": first_month, "last_month": last_month}
    return [
        _execute(_("Export to Excel"), EXPORT_VERB, {**data, "format": "xlsx"}),
        _execute(_("Export CSV"), EXPORT_VERB, {**data, "format": "csv"}),
    ]


def _detail_row(detail: DetailView) -> dict[str, Any]:
    label = detail.label if not detail.product else f"{detail.label} · {detail.product}"
    quantity = (
        f"{detail.quantity} × {detail.unit_price}"
        if not detail.unpriced
        else _("{quantity} × no price", quantity=detail.quantity)
    )
    if detail.days:
        quantity = f"{quantity} · {detail.days}"
    amount: dict[str, Any] = {"type": "TextBlock", "text": detail.amount}
    if detail.unpriced:
        amount["color"] = "Attention"
    return {
        "type": "ColumnSet",
        "spacing": "None",
        "columns": [
            {"type": "Column", "width": "stretch", "items": [text(label, subtle=True)]},
            {"type": "Column", "width": "auto", "items": [{"type": "TextBlock", "text": quantity, "isSubtle": True}]},
            {"type": "Column", "width": "auto", "items": [amount]},
        ],
    }


def _amount_row(left: list[dict[str, Any]], amount: str, target: str, *, bold: bool = False) -> dict[str, Any]:
    """A row that shows or hides `target` when tapped. Its amount reads "€10.00 ▸" while `target` is
    hidden and "€10.00 ▾" while it shows: both forms are toggled with it."""
    shown: dict[str, Any] = {"type": "TextBlock", "text": f"{amount} ▸", "id": f"{target}-c"}
    if bold:
        shown["weight"] = "Bolder"
    return {
        "type": "ColumnSet",
        # No title: a person's screen reader names the row by what it says.
        "selectAction": {"type": "Action.ToggleVisibility", "targetElements": [target, f"{target}-c", f"{target}-e"]},
        "columns": [
            {"type": "Column", "width": "stretch", "items": left},
            {
                "type": "Column",
                "width": "auto",
                "verticalContentAlignment": "Center",
                "items": [shown, {**shown, "text": f"{amount} ▾", "id": f"{target}-e", "isVisible": False}],
            },
        ],
    }


def _cycle_block(index: int, cycle: CycleView, top: int, max_details: int) -> list[dict[str, Any]]:
    cycle_id = f"c{index}"
    status = _("issued") if cycle.issued else _("open — so far, not final")
    left = [
        text(f"**{cycle.title}** · {cycle.period}"),
        text(_("Report dated {report_date} · {status}", report_date=cycle.report_date, status=status), subtle=True),
    ]
    if cycle.unpriced:
        unpriced = ngettext("{n} line", "{n} lines", cycle.unpriced)
        left.append(
            text(_("⚠ {unpriced} without a price — your reseller has been told.", unpriced=unpriced), color="Attention")
        )
    items: list[dict[str, Any]] = []
    shown = cycle.subscriptions[:top]
    for position, subscription in enumerate(shown):
        details_id = f"{cycle_id}s{position}"
        items.append(
            _amount_row(
                [
                    text(subscription.product, weight="Bolder"),
                    {"type": "TextBlock", "text": subscription.subscription_id, "isSubtle": True},
                ],
                subscription.amount,
                details_id,
            )
        )
        details = [_detail_row(detail) for detail in subscription.details[:max_details]]
        if len(subscription.details) > max_details:
            more = ngettext("{n} more line", "{n} more lines", len(subscription.details) - max_details)
            details.append(text(_("…and {more} in the export.", more=more), subtle=True))
        items.append({"type": "Container", "id": details_id, "isVisible": False, "items": details})
    hidden = len(cycle.subscriptions) - len(shown)
    if hidden > 0:
        more = ngettext("{n} more subscription", "{n} more subscriptions", hidden)
        items.append(text(_("…and {more} in the export.", more=more), subtle=True))
    if not cycle.subscriptions:
        items.append(text(_("No charges in this cycle."), subtle=True))
    return [
        {
            **_amount_row(left, cycle.total, cycle_id, bold=True),
            "separator": True,
            "spacing": "Medium",
        },
        {"type": "Container", "id": cycle_id, "isVisible": False, "items": items},
    ]


def build_report_card(view: ReportView, *, top: int = 10, max_details: int = 12) -> Card:
    """One entry per cycle with its total; tap it for the subscriptions (largest first), tap one of
    those for its detail lines. Shrinks the lists to stay within Teams' message size."""
    for attempt_top, attempt_details in ((top, max_details), (5, 8), (3, 5), (1, 3), (1, 1), (0, 0)):
        body: list[dict[str, Any]] = [
            heading(view.title),
            text(
                _(
                    "{organisation} · tap a cycle, then a subscription, for the details.",
                    organisation=view.organisation,
                ),
                subtle=True,
            ),
        ]
        if view.note:
            body.append(text(view.note))
        if view.grand_total and len(view.cycles) > 1:
            body.append(facts([(_("Total"), view.grand_total)]))
        for index, cycle in enumerate(view.cycles):
            body += _cycle_block(index, cycle, attempt_top, attempt_details)
        result = card(body, export_actions(view.first_month, view.last_month))
        if len(json.dumps(result, ensure_ascii=False).encode()) <= CARD_BUDGET:
            return result
    return result


def build_spend_card(view: SpendView) -> Card:
    body: list[dict[str, Any]] = [
        heading(_("Spend on {product}", product=view.product)),
        text(view.label[:1].upper() + view.label[1:], subtle=True),  # capitalize() would lower German nouns
    ]
    if view.rows:
        body.append(facts(view.rows))
        body.append(text(_("Total: **{total}**", total=view.total), weight=None))
    else:
        body.append(text(_("No charges for {product!r} in {label}.", product=view.product, label=view.label)))
    return card(body, [command_button(_("Full report"), view.full_report_command)])


LAST_MONTH_BUTTON = N_("Last month's bill")
RANGE_BUTTON = N_("Show these months")


def _month_choices(input_id: str, label: str, view: RangeChoiceView, value: str) -> dict[str, Any]:
    return {
        "type": "Input.ChoiceSet",
        "id": input_id,
        "label": label,
        "style": "compact",
        "isRequired": True,
        "errorMessage": _("Pick a month: {label}", label=label),
        "choices": [{"title": title, "value": month} for month, title in view.months],
        "value": value,
    }


def build_range_card(view: RangeChoiceView) -> Card:
    """Last month's bill in one click, or a range of the months that have bills (newest first)."""
    body: list[dict[str, Any]] = [
        heading(_("Billing report")),
        text(
            _(
                "**{LAST_MONTH_BUTTON}** shows the most recent billing cycle that has ended. Or pick the "
                "months to show (both included).",
                LAST_MONTH_BUTTON=_(LAST_MONTH_BUTTON),
            )
        ),
    ]
    if view.error:
        body.append(text(view.error, color="Attention", weight="Bolder"))
    newest = view.months[0][0] if view.months else ""
    body += [
        _month_choices("first_month", _("From"), view, view.first_month or newest),
        _month_choices("last_month", _("To"), view, view.last_month or newest),
    ]
    if view.older:
        body.append(text(_("Older bills: type **billing {older}**.", older=view.older), subtle=True))
    return card(
        body,
        [
            {
                "type": "Action.Submit",
                "title": _(LAST_MONTH_BUTTON),
                "data": {"verb": RANGE_VERB, "choice": "last"},
                "associatedInputs": "none",
            },
            {"type": "Action.Submit", "title": _(RANGE_BUTTON), "data": {"verb": RANGE_VERB, "choice": "range"}},
        ],
    )


def build_export_link_card(name: str, url: str, minutes: int, *, declined: bool = False) -> Card:
    intro = _("No problem — here is a download link instead.") if declined else _("Your export is ready.")
    lasting = ngettext("{n} minute", "{n} minutes", minutes)
    return card(
        [
            heading(name),
            text(intro),
            text(
                _(
                    "The link works **once**, for **{lasting}**, and only for you; downloads are logged.",
                    lasting=lasting,
                ),
                subtle=True,
            ),
        ],
        [{"type": "Action.OpenUrl", "title": _("Download"), "url": url}],
    )


def file_consent_attachment(name: str, size: int, description: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Teams' FileConsentCard: asks the user to let the bot put a file in their OneDrive."""
    return {
        "contentType": FILE_CONSENT,
        "name": name,
        "content": {
            "description": description,
            "sizeInBytes": size,
            "acceptContext": dict(context),
            "declineContext": dict(context),
        },
    }


def file_info_attachment(name: str, content_url: str, unique_id: str, file_type: str) -> dict[str, Any]:
    """Teams' FileInfoCard: the uploaded file, shown in the chat."""
    return {
        "contentType": FILE_INFO,
        "name": name,
        "contentUrl": content_url,
        "content": {"uniqueId": unique_id, "fileType": file_type},
    }


@dataclass(frozen=True)
class SearchHit:
    title: str
    subtitle: str
    card: Card = field(default_factory=dict)


def compose_extension_result(hits: Sequence[SearchHit]) -> dict[str, Any]:
    """The `composeExtension/query` answer: a list of previews; picking one inserts its card."""
    return {
        "composeExtension": {
            "type": "result",
            "attachmentLayout": "list",
            "attachments": [
                {
                    "contentType": ADAPTIVE,
                    "content": hit.card,
                    "preview": {"contentType": THUMBNAIL, "content": {"title": hit.title, "text": hit.subtitle}},
                }
                for hit in hits
            ],
        }
    }


def compose_extension_message(message: str) -> dict[str, Any]:
    return {"composeExtension": {"type": "message", "text": message}}


@dataclass(frozen=True)
class BillSummaryView:
    title: str  # "Bill — September 2026"
    period: str
    report_date: str
    total: str
    status: str
    top: tuple[tuple[str, str], ...]  # (product, amount), largest first
    more: int
    full_report_command: str


def build_bill_summary_card(view: BillSummaryView) -> Card:
    """A compact bill for look-ups and the message extension: totals and the largest subscriptions."""
    body: list[dict[str, Any]] = [
        heading(view.title),
        facts([(_("Period"), view.period), (_("Report dated"), view.report_date), (_("Status"), view.status)]),
        text(_("Total: **{total}**", total=view.total)),
    ]
    if view.top:
        body.append(facts(view.top))
    if view.more:
        more = ngettext("{n} more subscription", "{n} more subscriptions", view.more)
        body.append(text(_("…and {more}.", more=more), subtle=True))
    if not view.top:
        body.append(text(_("No charges in this cycle."), subtle=True))
    return card(body, [command_button(_("Full report"), view.full_report_command)])
