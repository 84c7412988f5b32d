"""Billing: the report dialog, quick look-ups, exports and the bills message extension.

Steps of the dialog (`billing`, or the menu's Billing entry):
  start_step  — "billing <words>" (last month, 2026-09, this year, 2026-01..2026-06, a product) is
                answered at once; plain "billing" shows the chooser (last month or a range of months)
  range_step  — reads the chooser; a bad range re-shows it with the error and the values kept

Bills are answered in the requester's 1:1 chat (asked in a channel, the channel only hears that).
Exports (Action.Execute `billing_export`) go through Teams' file consent flow in a personal chat
with real Teams, otherwise (and when consent is declined) as a single-use download link.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar, overload

from microsoft_agents.activity import AdaptiveCardInvokeResponse, Attachment, InvokeResponse
from microsoft_agents.hosting.core import MessageFactory, TurnContext

from cards.billing import (
    EXPORT_VERB,
    BillSummaryView,
    CycleView,
    DetailView,
    RangeChoiceView,
    ReportView,
    SearchHit,
    SpendView,
    SubscriptionView,
    build_bill_summary_card,
    build_export_link_card,
    build_range_card,
    build_report_card,
    build_spend_card,
    compose_extension_message,
    compose_extension_result,
    file_consent_attachment,
    file_info_attachment,
)
from dialogs.base import CARD_PROMPT, TaskDialog, caller_of, card_activity, normalised_text
from dialogs.catalogue import Task
from dialogs.private_replies import send_privately
from dialogs.sdk import DialogTurnResult, WaterfallStepContext
from services import formatting
from services.access import Caller
from services.billing.export import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, export_name, to_csv, to_xlsx
from services.billing.rating import CHARGE_LABELS, ChargeType, Line
from services.billing.reports import (
    CycleReport,
    Query,
    SubscriptionGroup,
    month_from_label,
    month_label,
    months_label,
    parse_month,
)
from services.billing.service import EXPORT_FORMATS, EXPORT_LINK_MINUTES, BillingService, BillMonths
from services.errors import DomainError, InvalidInput
from services.i18n import N_, _
from services.roles import Permission

BILLING_DIALOG = "billing_dialog"
BILLING_TITLE = N_("Billing")
CHOOSER_WORDS = ("billing", "bills", "bill")
NO_BILLS = N_("There are no bills yet: your organisation has no subscriptions with your reseller.")
EXPORT_GONE = N_("That export is not valid any more. Ask for the report again.")
# What can be typed instead of using the chooser (typed words, not translated); `help` lists them
# with what each shows (`N_`: translated where shown).
BILLING_SHORTCUTS = (
    ("billing last month", N_("the most recent billing cycle that has ended")),
    ("billing this month", N_("the open cycle, so far")),
    ("billing september", N_("one month (or billing 2026-09)")),
    ("billing january to june", N_("a range of months, at most 24 (or billing 2026-01..2026-06)")),
    ("billing this year", N_("this year's months so far")),
    ("what did we spend on E3", N_("a product's spend over the last 12 months")),
)
SEARCH_COMMAND = "searchBills"
SUMMARY_TOP = 5
MAX_SEARCH_CHARS = 200  # a month, a range or a product name; the answer card repeats it
INVOKE_MESSAGE = "application/vnd.microsoft.activity.message"
S = TypeVar("S")
V = TypeVar("V")


# ---- view models ---------------------------------------------------------------------------------
def _totals_text(totals: dict[str, Decimal]) -> str:
    return formatting.money_totals(totals, empty=_("no charges"))


def _period(report: CycleReport) -> str:
    return formatting.date_range(report.cycle.start, report.cycle.end)


def _title(report: CycleReport) -> str:
    return formatting.month(report.cycle.end)


def _detail(line: Line) -> DetailView:
    label = _(CHARGE_LABELS[line.charge_type])
    if line.charge_type is ChargeType.ADJUSTMENT and line.corrects is not None:
        label = _("{charge} for the cycle ending {date}", charge=label, date=formatting.date(line.corrects))
    priced = line.amount is not None and line.unit_price is not None
    return DetailView(
        label=label,
        product=line.product if line.parent_subscription_id else "",
        quantity=str(line.quantity),
        unit_price=formatting.price(line.unit_price, line.currency) if priced and line.unit_price is not None else "",
        days=_("{days}/{cycle_days} days", days=line.days, cycle_days=line.cycle_days) if line.days is not None else "",
        amount=formatting.money(line.amount, line.currency) if line.amount is not None else _("no price"),
        unpriced=not priced,
    )


def _group_amount(totals: dict[str, Decimal], unpriced: bool) -> str:
    if not unpriced:
        return _totals_text(totals)
    priced = formatting.money_totals(totals, empty="")
    return _("{amount} + unpriced", amount=priced) if priced else _("unpriced")


class Formatted(Sequence[V], Generic[S, V]):
    """`make(item)` for each of `items`, made the first time it is read. A card shows the largest ten
    of maybe a thousand subscriptions and a dozen lines of each: the rest are counted, never formatted."""

    def __init__(self, items: Sequence[S], make: Callable[[S], V]) -> None:
        self._items = items
        self._make = make
        self._made: dict[int, V] = {}

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> V: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[V, ...]: ...

    def __getitem__(self, index: int | slice) -> V | tuple[V, ...]:
        if isinstance(index, slice):
            return tuple(self[n] for n in range(*index.indices(len(self._items))))
        position = range(len(self._items))[index]  # IndexError beyond the end, like a tuple
        if position not in self._made:
            self._made[position] = self._make(self._items[position])
        return self._made[position]


def _subscription_view(group: SubscriptionGroup) -> SubscriptionView:
    return SubscriptionView(
        subscription_id=group.subscription_id,
        product=group.product,
        amount=_group_amount(group.totals, bool(group.unpriced)),
        details=Formatted(group.lines, _detail),
        unpriced=bool(group.unpriced),
    )


def cycle_view(report: CycleReport) -> CycleView:
    groups = sorted(report.groups(), key=lambda group: group.sort_amount, reverse=True)
    return CycleView(
        title=_title(report),
        period=_period(report),
        report_date=formatting.date(report.report_date),
        total=_totals_text(report.totals),
        issued=report.issued,
        subscriptions=Formatted(groups, _subscription_view),
        unpriced=report.unpriced,
    )


def report_view(
    reports: Sequence[CycleReport], organisation: str, label: str, asked_from: tuple[int, int] | None = None
) -> ReportView:
    """The reports of the months asked for from `asked_from`; those before the first subscription
    are not among them (no service then), which the card says."""
    totals: dict[str, Decimal] = {}
    for report in reports:
        for currency, amount in report.totals.items():
            totals[currency] = totals.get(currency, Decimal(0)) + amount
    first, last = reports[0].cycle.month, reports[-1].cycle.month
    no_service_before = asked_from is not None and first > asked_from
    return ReportView(
        title=_("Bills — {label}", label=label),
        organisation=organisation,
        cycles=tuple(cycle_view(report) for report in reports),
        first_month=month_label(first),
        last_month=month_label(last),
        grand_total=_totals_text(totals),
        note=(
            _("No service before {month}, so no bills before it.", month=_title(reports[0]))
            if no_service_before
            else ""
        ),
    )


def summary_view(report: CycleReport) -> BillSummaryView:
    view = cycle_view(report)
    return BillSummaryView(
        title=_("Bill — {month}", month=view.title),
        period=view.period,
        report_date=view.report_date,
        total=view.total,
        status=_("issued") if report.issued else _("open — so far, not final"),
        top=tuple((s.product, s.amount) for s in view.subscriptions[:SUMMARY_TOP]),
        more=max(len(view.subscriptions) - SUMMARY_TOP, 0),
        full_report_command=f"billing {month_label(report.cycle.month)}",
    )


def spend_view(query: Query, reports: Sequence[CycleReport]) -> SpendView:
    rows = tuple((_title(r), _totals_text(r.totals)) for r in reports if r.lines)
    totals: dict[str, Decimal] = {}
    for report in reports:
        for currency, amount in report.totals.items():
            totals[currency] = totals.get(currency, Decimal(0)) + amount
    first, last = query.first or reports[0].cycle.month, query.last or reports[-1].cycle.month
    return SpendView(
        product=query.shown_product,
        label=query.label,
        rows=rows,
        total=_totals_text(totals),
        full_report_command=f"billing {month_label(first)}..{month_label(last)}",
    )


def range_view(bill_months: BillMonths, first: str = "", last: str = "", error: str = "") -> RangeChoiceView:
    """The chooser's months (newest first), preset to last month (or what was picked before)."""
    months = tuple((month_label(m), formatting.month(date(m[0], m[1], 1))) for m in bill_months.months)
    shown = {value for value, _name in months}
    preset = month_label(bill_months.last_ended or bill_months.months[0])
    oldest = bill_months.months[-1]
    before = (oldest[0] - 1, 12) if oldest[1] == 1 else (oldest[0], oldest[1] - 1)
    return RangeChoiceView(
        months=months,
        first_month=first if first in shown else preset,
        last_month=last if last in shown else preset,
        error=error,
        older=month_label(before) if bill_months.older else "",
    )


def answer_card(caller: Caller, query: Query, reports: Sequence[CycleReport]) -> dict[str, Any]:
    if query.product:
        return build_spend_card(spend_view(query, reports))
    return build_report_card(report_view(reports, caller.organisation_name, query.label, query.first))


# ---- the dialog ------------------------------------------------------------------------------------
class BillingDialog(TaskDialog):
    title = BILLING_TITLE
    shortcuts = BILLING_SHORTCUTS

    def __init__(self, billing: BillingService) -> None:
        super().__init__(BILLING_DIALOG, [self.start_step, self.range_step])
        self._billing = billing

    async def start_step(self, step_context: WaterfallStepContext) -> DialogTurnResult:
        options = step_context.options if isinstance(step_context.options, dict) else {}
        caller = caller_of(step_context.context)
        if options.get("error"):
            return await self._choose(
                step_context, caller, options.get("first", ""), options.get("last", ""), options["error"]
            )
        activity = step_context.context.activity
        value = activity.value if isinstance(activity.value, dict) else {}
        words = " ".join(str(value.get("command", "")).lower().split()) if value else normalised_text(activity)
        if words in CHOOSER_WORDS:
            return await self._choose(step_context, caller)
        query, reports = await self._billing.lookup(caller, words)
        await send_privately(step_context.context, caller, card_activity(answer_card(caller, query, reports)))
        return await step_context.end_dialog()

    async def _choose(
        self, step_context: WaterfallStepContext, caller: Caller, first: str = "", last: str = "", error: str = ""
    ) -> DialogTurnResult:
        """The chooser over the months that have bills; without any, says so and ends."""
        bill_months = await self._billing.bill_months(caller)
        if not bill_months.months:
            await step_context.context.send_activity(_(NO_BILLS))
            return await step_context.end_dialog()
        card = build_range_card(range_view(bill_months, first, last, error))
        return await step_context.prompt(CARD_PROMPT, self.prompt_card(card))

    async def range_step(self, step_context: WaterfallStepContext) -> DialogTurnResult:
        submitted = step_context.result if isinstance(step_context.result, dict) else {}
        caller = caller_of(step_context.context)
        first_text = str(submitted.get("first_month", "")).strip()
        last_text = str(submitted.get("last_month", "")).strip() or first_text
        asked_from: tuple[int, int] | None = None
        try:
            if submitted.get("choice") == "last":
                reports = [await self._billing.last_month(caller)]
                label = _("last month")
            else:
                if not first_text:
                    raise InvalidInput(_("Pick the first month to show."), field="first_month")
                today = await self._billing.today()
                first, last = parse_month(first_text, today), parse_month(last_text, today)
                reports, asked_from = await self._billing.months(caller, first, last), first
                label = months_label(first, last)
        except InvalidInput as error:
            return await step_context.replace_dialog(
                f"{BILLING_DIALOG}.steps", {"error": error.message, "first": first_text, "last": last_text}
            )
        view = report_view(reports, caller.organisation_name, label, asked_from)
        await send_privately(step_context.context, caller, card_activity(build_report_card(view)))
        return await step_context.end_dialog()


# ---- exports --------------------------------------------------------------------------------------
def _month_argument(value: Any) -> tuple[int, int]:
    try:
        return month_from_label(value if isinstance(value, str) else "")
    except InvalidInput:
        raise InvalidInput(_(EXPORT_GONE)) from None


def export_file(reports: Sequence[CycleReport], file_format: str, organisation: str) -> tuple[bytes, str]:
    if file_format == "csv":
        return to_csv(reports), CSV_MEDIA_TYPE
    return to_xlsx(reports, organisation=organisation), XLSX_MEDIA_TYPE


def _invoke_message(message: str) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=200, type=INVOKE_MESSAGE, value=message)


def _is_personal(context: TurnContext) -> bool:
    conversation = context.activity.conversation
    return conversation is None or (conversation.conversation_type or "personal") == "personal"


class FileUploads(Protocol):
    """Where an accepted file consent's file goes (the bot's OneDrive upload, `bot/file_uploads.py`)."""

    def check(self, url: str) -> None:
        """`InvalidInput` when the upload address Teams gave is not one we may send to."""

    async def put(self, url: str, content: bytes, media_type: str) -> None:
        """Upload the file; `InvalidInput` when the upload was refused."""


class BillingInvokes:
    """The card action and the invokes of billing: export, file consent, the message extension."""

    def __init__(self, billing: BillingService, uploads: FileUploads) -> None:
        self._billing = billing
        self._uploads = uploads

    async def _send_link(
        self, context: TurnContext, caller: Caller, fmt: str, first: tuple[int, int], last: tuple[int, int], **kw: Any
    ) -> None:
        token = await self._billing.create_export_link(caller, fmt, first, last)
        name = export_name(month_label(first), month_label(last), fmt)
        card = build_export_link_card(name, self._billing.export_url(token), EXPORT_LINK_MINUTES, **kw)
        await send_privately(context, caller, card_activity(card))

    async def export(self, context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        caller.require(Permission.READ_BILLING)
        fmt = str(data.get("format", ""))
        if fmt not in EXPORT_FORMATS:
            return _invoke_message(_(EXPORT_GONE))
        first, last = _month_argument(data.get("first_month")), _month_argument(data.get("last_month"))
        if self._billing.file_consent and _is_personal(context):
            reports = await self._billing.months(caller, first, last)
            content, _media_type = export_file(reports, fmt, caller.organisation_name)
            token = await self._billing.create_export_link(caller, fmt, first, last)
            name = export_name(month_label(first), month_label(last), fmt)
            context_data = {
                "export": token,
                "format": fmt,
                "first_month": month_label(first),
                "last_month": month_label(last),
            }
            attachment = file_consent_attachment(
                name, len(content), _("Bills {file_name}", file_name=name), context_data
            )
            await context.send_activity(MessageFactory.attachment(Attachment.model_validate(attachment)))
            return _invoke_message(_("Allow me to put the file in your OneDrive, and it appears here."))
        await self._send_link(context, caller, fmt, first, last)
        if _is_personal(context):
            return _invoke_message(_("Your export link follows."))
        return _invoke_message(_("Your export link is in our 1:1 chat."))

    async def file_consent(self, context: TurnContext, caller: Caller | None) -> InvokeResponse:
        """`fileConsent/invoke`: accepted → upload to the URL Teams gave and show the file; declined →
        a download link instead. The export named in the context is re-checked against the caller."""
        value = context.activity.value if isinstance(context.activity.value, dict) else {}
        given = value.get("context")
        data: dict[str, Any] = given if isinstance(given, dict) else {}
        if caller is None:
            return InvokeResponse(status=200)
        try:
            caller.require(Permission.READ_BILLING)
            fmt = str(data.get("format", ""))
            first, last = _month_argument(data.get("first_month")), _month_argument(data.get("last_month"))
            if value.get("action") != "accept":
                await self._send_link(context, caller, fmt, first, last, declined=True)
                return InvokeResponse(status=200)
            info_given = value.get("uploadInfo")
            upload: dict[str, Any] = info_given if isinstance(info_given, dict) else {}
            upload_url = str(upload.get("uploadUrl", ""))
            self._uploads.check(upload_url)  # before the export is used up
            grant = await self._billing.redeem_export_link(str(data.get("export", "")), caller=caller)
            reports = await self._billing.reports_for_grant(grant)
            content, media_type = export_file(reports, grant.file_format, caller.organisation_name)
            await self._uploads.put(upload_url, content, media_type)
            info = file_info_attachment(
                str(upload.get("name", "")),
                str(upload.get("contentUrl", "")),
                str(upload.get("uniqueId", "")),
                str(upload.get("fileType", grant.file_format)),
            )
            await context.send_activity(MessageFactory.attachment(Attachment.model_validate(info)))
        except DomainError as error:
            await context.send_activity(error.message)
        return InvokeResponse(status=200)

    async def search(self, context: TurnContext, caller: Caller | None) -> InvokeResponse:
        """`composeExtension/query`: a month or a product typed in the compose box → bill summaries."""
        if caller is None:
            return _compose(_("You are not registered with your reseller, so I cannot show bills."))
        if not caller.can(Permission.READ_BILLING):
            return _compose(_("Only admins and billing readers of your organisation can see bills."))
        value = context.activity.value if isinstance(context.activity.value, dict) else {}
        words = ""
        parameters = value.get("parameters")
        for parameter in parameters if isinstance(parameters, list) else []:
            # Our manifest names it "query"; clients may send "searchQuery"; "initialRun" is no query.
            if isinstance(parameter, dict) and parameter.get("name") != "initialRun":
                words = str(parameter.get("value") or "").strip()
                break
        if len(words) > MAX_SEARCH_CHARS:
            return _compose(
                _(
                    "Search with at most {limit} characters: a month, a range or a product name.",
                    limit=MAX_SEARCH_CHARS,
                )
            )
        try:
            if not words:
                today = await self._billing.today()
                first = (today.year, today.month - 5) if today.month > 5 else (today.year - 1, today.month + 7)
                reports = await self._billing.months(caller, first, (today.year, today.month))
                query = Query(first=first, last=(today.year, today.month), label=_("the last 6 months"))
            else:
                query, reports = await self._billing.lookup(caller, words)
        except InvalidInput as error:
            return _compose(error.message)
        if query.product:
            spend = spend_view(query, reports)
            title = _("Spend on {product}: {total}", product=spend.product, total=spend.total)
            hits = [SearchHit(title, query.label, build_spend_card(spend))]
        else:
            hits = [
                SearchHit(
                    _("{month}: {total}", month=_title(r), total=_totals_text(r.totals)),
                    _period(r),
                    build_bill_summary_card(summary_view(r)),
                )
                for r in reversed(reports)
            ]
        return InvokeResponse(status=200, body=compose_extension_result(hits))


def _compose(message: str) -> InvokeResponse:
    return InvokeResponse(status=200, body=compose_extension_message(message))


def billing_tasks(billing: BillingService, uploads: FileUploads) -> list[Task]:
    invokes = BillingInvokes(billing, uploads)
    return [
        Task(
            command="billing",
            title=BILLING_TITLE,
            description=N_("Bills: last month, a range of months, a product's spend; export to Excel/CSV"),
            dialog=BillingDialog(billing),
            permission=Permission.READ_BILLING,
            aliases=CHOOSER_WORDS[1:],
            prefixes=(*CHOOSER_WORDS, "what did we spend on", "what do we spend on", "spend on"),
            shortcuts=BILLING_SHORTCUTS,
            card_actions={EXPORT_VERB: invokes.export},
            invokes={"fileConsent/invoke": invokes.file_consent, "composeExtension/query": invokes.search},
        )
    ]
