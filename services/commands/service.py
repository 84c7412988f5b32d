"""A parsed one-line command resolved against the caller's organisation: which subscription, product,
plan, person and licence it names, and what the confirmation shows — computed by the same services
the full tasks use (their role checks, Microsoft's rules, the reseller's prices). Nothing is changed
here: the outcome is a confirmation to show, a choice to make, or an answer.

`pins` carry the admin's picks from a choice card (slot → id); every pinned id is looked up among
the caller's own subscriptions, offers, users and licences again, never trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import formatting
from services.access import Caller
from services.catalog import CatalogService
from services.commands.matching import Candidate, Match, Matcher
from services.commands.parser import Command, Kind
from services.container import Services
from services.errors import DomainError, InvalidInput
from services.i18n import N_, _, ngettext
from services.models import SubscriptionRow, TenantUser
from services.ordering import CYCLE_NAMES, OfferedProduct, OrderingService, Quote, purchase_spend, term_name
from services.roles import Permission
from services.spending import Spend, SpendingPolicies
from services.subscriptions import (
    ApprovalService,
    CancelPlan,
    QuantityPlan,
    SubscriptionChanges,
    SubscriptionService,
    SubscriptionView,
)
from services.subscriptions.changes import seats_spend
from services.subscriptions.common import LIVE
from services.users.licences import LicenceService, PoolView
from services.users.service import UserService

log = logging.getLogger(__name__)

V = TypeVar("V")
SUBSCRIPTION, OFFER, PLAN, USER, LICENCE = "subscription", "offer", "plan", "user", "licence"
SEAT_KINDS = frozenset({Kind.ADD_SEATS, Kind.REMOVE_SEATS, Kind.SET_SEATS})
# Commands whose answers name the tenant's users: in a channel they continue in the 1:1 chat.
PRIVATE_KINDS = frozenset({Kind.ASSIGN, Kind.UNASSIGN, Kind.WHO_HAS, Kind.NEW_USER, Kind.OFFBOARD})
_TERM_WORDS = {"P1M": N_("1 month"), "P1Y": N_("1 year"), "P3Y": N_("3 years")}


@dataclass(frozen=True)
class Option:
    title: str
    detail: str
    pin: str


@dataclass(frozen=True)
class Choose:
    """Several things fit: the admin picks one (then the command is resolved again with the pick)."""

    question: str
    slot: str
    options: tuple[Option, ...]


@dataclass(frozen=True)
class Answer:
    """A reply with nothing to confirm: an answer, or why the command cannot be done, with commands
    to try instead (`suggestions`, offered as buttons)."""

    text: str
    suggestions: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    title: str = ""


@dataclass(frozen=True)
class SubscriptionAction:
    """A change to one subscription, planned by the subscriptions service (`plan`: its preview)."""

    kind: Kind
    view: SubscriptionView
    plan: QuantityPlan | CancelPlan | None = None
    note: str = ""


@dataclass(frozen=True)
class Purchase:
    quote: Quote
    category: str
    group: str
    note: str = ""


@dataclass(frozen=True)
class Person:
    user_id: str
    display_name: str
    user_principal_name: str
    usage_location: str
    licence_sku_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class LicenceAction:
    kind: Kind  # ASSIGN or UNASSIGN
    person: Person
    pool: PoolView
    usage_location: str  # for a person without one: the organisation's country, editable
    note: str = ""


Outcome = Answer | Choose | SubscriptionAction | Purchase | LicenceAction


@dataclass
class _Notes:
    items: list[str] = field(default_factory=list)

    def took(self, match: Match[object], name: str) -> None:
        if match.fuzzy:
            self.items.append(_("I took “{typed}” to mean {name}.", typed=match.typed, name=name))

    def __str__(self) -> str:
        return " ".join(self.items)


def _subscription_detail(row: SubscriptionRow) -> str:
    term = _(_TERM_WORDS.get(row.term_duration, row.term_duration))
    renews = _(", renews {date}", date=formatting.date(row.commitment_end_date)) if row.commitment_end_date else ""
    return _(
        "{seats}, {term} billed {billing_cycle}, {status}{renews}",
        seats=formatting.seats(row.quantity),
        term=term,
        billing_cycle=row.billing_cycle,
        status=row.status,
        renews=renews,
    )


class CommandService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        subscriptions: SubscriptionService,
        changes: SubscriptionChanges,
        approvals: ApprovalService,
        ordering: OrderingService,
        catalog: CatalogService,
        users: UserService,
        licences: LicenceService,
        spending: SpendingPolicies,
    ) -> None:
        self._spending = spending
        self._sessions = sessions
        self._subscriptions = subscriptions
        self._changes = changes
        self._approvals = approvals
        self._ordering = ordering
        self._catalog = catalog
        self._users = users
        self._licences = licences

    async def resolve(self, caller: Caller, command: Command, pins: Mapping[str, str] | None = None) -> Outcome:
        """What `command` would do for `caller` (nothing is changed)."""
        pins = dict(pins or {})
        try:
            if command.kind in SEAT_KINDS or command.kind in (
                Kind.SUSPEND,
                Kind.REACTIVATE,
                Kind.AUTORENEW_OFF,
                Kind.AUTORENEW_ON,
                Kind.CANCEL,
                Kind.RENEWAL,
            ):
                return await self._on_subscription(caller, command, pins)
            if command.kind is Kind.BUY:
                return await self._purchase(caller, command, pins)
            if command.kind in (Kind.ASSIGN, Kind.UNASSIGN):
                return await self._licence_change(caller, command, pins)
            if command.kind in (Kind.WHO_HAS, Kind.FREE_SEATS):
                return await self._licence_question(caller, command, pins)
        except DomainError as error:  # a role, a rule or Microsoft said no: nothing was changed
            return Answer(error.message)
        raise ValueError(f"{command.kind} is resolved elsewhere")

    # --- subscriptions ------------------------------------------------------------------------------

    async def live_rows(self, caller: Caller) -> list[SubscriptionRow]:
        """The organisation's subscriptions that can still change (fresh from Microsoft when stale)."""
        await self._subscriptions.page(caller)  # checks the role; syncs when the copy is stale
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(SubscriptionRow)
                    .where(SubscriptionRow.organisation_id == caller.organisation_id, SubscriptionRow.status.in_(LIVE))
                    .order_by(SubscriptionRow.name, SubscriptionRow.created_at)
                )
            )
            for row in rows:
                session.expunge(row)
        return rows

    async def _find_subscription(
        self, caller: Caller, command: Command, pins: Mapping[str, str], notes: _Notes
    ) -> SubscriptionRow | Answer | Choose:
        rows = await self.live_rows(caller)
        pinned = pins.get(SUBSCRIPTION)
        if pinned:
            row = next((row for row in rows if row.id == pinned.lower()), None)
            return row if row is not None else Answer(_("That subscription is not one of yours any more."))
        matcher = Matcher(
            [Candidate(row, row.name, keys=(f"{row.product_id}:{row.sku_id}", row.product_id, row.id)) for row in rows]
        )
        match = matcher.match(command.product)
        found = [candidate.value for candidate in match.found]
        if len(found) > 1:
            preferred = [row for row in found if row.status == _wanted_status(command.kind)]
            found = preferred if len(preferred) == 1 else found
        if len(found) == 1:
            notes.took(match, found[0].name)  # type: ignore[arg-type]
            return found[0]
        if found:
            return Choose(
                _("Which subscription do you mean by “{product}”?", product=command.product),
                SUBSCRIPTION,
                tuple(Option(row.name, _subscription_detail(row), row.id) for row in found[:10]),
            )
        return await self._no_subscription(command, rows, match)

    async def _no_subscription(
        self, command: Command, rows: Sequence[SubscriptionRow], match: Match[SubscriptionRow]
    ) -> Answer:
        catalog = Matcher(await self._catalog_candidates()).match(command.product)
        if catalog.found and len(catalog.found) <= 3:
            names = " or ".join(candidate.name for candidate in catalog.found)
            first = catalog.found[0].name
            return Answer(_("You have no {names} subscription.", names=names), suggestions=(f"buy 1 {first}",))
        if not rows:
            return Answer(_("You have no subscriptions yet."), suggestions=("add subscription",))
        if not match.suggestions:
            names = ", ".join(dict.fromkeys(row.name for row in rows))
            return Answer(
                _(
                    "None of your subscriptions is called “{product}”. You have: {names}.",
                    product=command.product,
                    names=names,
                )
            )
        return _did_you_mean(
            _("None of your subscriptions is called “{product}”.", product=command.product), command, match.suggestions
        )

    async def _catalog_candidates(self) -> list[Candidate[str]]:
        return [
            Candidate(sku.key, product.title, keys=(sku.key, product.id), aliases=(sku.title,))
            for product in await self._catalog.products()
            for sku in product.skus
        ]

    async def _on_subscription(self, caller: Caller, command: Command, pins: Mapping[str, str]) -> Outcome:
        kind = command.kind
        if kind is Kind.SUSPEND:
            caller.require(Permission.REQUEST_SUSPENSION)
        elif kind is not Kind.RENEWAL:
            caller.require(Permission.MANAGE_SERVICES)
        quantity_problem = _quantity_problem(command)
        if quantity_problem is not None:
            return quantity_problem
        notes = _Notes()
        found = await self._find_subscription(caller, command, pins, notes)
        if not isinstance(found, SubscriptionRow):
            return found
        view = await self._subscriptions.get(caller, found.id)
        if kind is Kind.RENEWAL:
            return Answer(_renewal_text(view), title=view.name)
        if kind in SEAT_KINDS:
            new = _new_quantity(command, view.quantity)
            if new < 0:
                return Answer(
                    _(
                        "{name} has {seats}, so {seats2} cannot be removed.",
                        name=view.name,
                        seats=formatting.seats(view.quantity),
                        seats2=formatting.seats(-new + view.quantity),
                    )
                )
            plan = await self._changes.plan_quantity(caller, view.id, new)
            if plan.kind == "increase":
                await self._approver_note(caller, seats_spend(plan), notes)
            return SubscriptionAction(kind, view, plan, str(notes))
        if kind is Kind.CANCEL:
            return SubscriptionAction(kind, view, await self._changes.plan_cancel(caller, view.id), str(notes))
        if kind is Kind.SUSPEND:
            if view.status != "active":
                return Answer(
                    _(
                        "{name} is {status}; only an active subscription can be suspended.",
                        name=view.name,
                        status=view.status,
                    )
                )
            requests = await self._approvals.open_requests(caller.organisation_id)
            if view.id in requests:
                return Answer(_("A suspension of {name} is already waiting for an approver.", name=view.name))
        if kind is Kind.REACTIVATE and view.status != "suspended":
            return Answer(
                _(
                    "{name} is {status}, not suspended: there is nothing to reactivate.",
                    name=view.name,
                    status=view.status,
                )
            )
        if kind in (Kind.AUTORENEW_OFF, Kind.AUTORENEW_ON):
            wanted = kind is Kind.AUTORENEW_ON
            if view.auto_renew == wanted:
                verb = (
                    _("renews on {date}", date=formatting.date(view.renewal_date))
                    if wanted
                    else _("ends on {date}", date=formatting.date(view.renewal_date))
                )
                return Answer(
                    _(
                        "Auto-renew is already {auto_renew} for {name}: it {verb}.",
                        auto_renew=_("on") if wanted else _("off"),
                        name=view.name,
                        verb=verb,
                    )
                )
        return SubscriptionAction(kind, view, None, str(notes))

    # --- buying -------------------------------------------------------------------------------------

    async def _purchase(self, caller: Caller, command: Command, pins: Mapping[str, str]) -> Outcome:
        store = await self._ordering.storefront(caller)  # admins only
        await self._ordering.customer_id(caller)  # a tenant with the Customer Agreement, else why not
        notes = _Notes()
        offered: OfferedProduct | None = store.find(pins[OFFER]) if pins.get(OFFER) else None
        if offered is None:
            match = Matcher(
                [
                    Candidate(item, item.name, keys=(item.key, item.sku.product_id), aliases=(item.product.title,))
                    for item in store.products
                ]
            ).match(command.product)
            if len(match.found) > 1:
                return Choose(
                    _("Which product do you mean by “{product}”?", product=command.product),
                    OFFER,
                    tuple(
                        Option(
                            c.value.name,
                            _("{key} · from {from_price}", key=c.value.key, from_price=_from_price(c.value)),
                            c.value.key,
                        )
                        for c in match.found[:10]
                    ),
                )
            if match.one is None:
                return await self._not_offered(command, match)
            offered = match.one.value
            notes.took(match, offered.name)  # type: ignore[arg-type]
        terms = [
            term
            for term in offered.terms
            if (not command.term or term.term_duration == command.term)
            and (not command.billing or term.billing_cycle == command.billing)
        ]
        pinned_plan = offered.term(pins[PLAN]) if pins.get(PLAN) else None
        if pinned_plan is not None:
            terms = [pinned_plan]
        if not terms:
            billed = _(CYCLE_NAMES.get(command.billing, command.billing)) if command.billing else ""
            if command.term and billed:
                said = _(
                    "with a {term_name} commitment, billed {billed}", term_name=term_name(command.term), billed=billed
                )
            elif command.term:
                said = _("with a {term_name} commitment", term_name=term_name(command.term))
            else:
                said = _("billed {billed}", billed=billed) if billed else ""
            offered_terms = "; ".join(term.label for term in offered.terms)
            return Answer(
                _(
                    "{name} is not offered {said}. It is offered: {offered_terms}.",
                    name=offered.name,
                    said=said,
                    offered_terms=offered_terms,
                )
            )
        if len(terms) > 1:
            return Choose(
                _("Which commitment for {name}?", name=offered.name),
                PLAN,
                tuple(
                    Option(
                        term.label,
                        formatting.unit_price(term.price.amount, term.price.currency, term.billing_cycle),
                        term.key,
                    )
                    for term in terms
                ),
            )
        quantity = offered.sku.minimum_quantity if command.quantity is None else command.quantity
        if command.quantity is None:
            notes.items.append(
                _(
                    "You did not say how many, so this is for {quantity}; **Change** sets another number.",
                    quantity=quantity,
                )
            )
        try:
            quote = await self._ordering.quote(caller, offered.key, terms[0].key, quantity)
        except InvalidInput as error:
            return Answer(error.message)
        await self._approver_note(caller, purchase_spend(quote), notes)
        return Purchase(quote, offered.product.category, offered.product.product_group, str(notes))

    async def _approver_note(self, caller: Caller, spend: Spend, notes: _Notes) -> None:
        """Say before the confirm that it goes to an approver (the same policy the services apply)."""
        reasons, _unused = await self._spending.reasons(caller.organisation_id, spend)
        if reasons:
            notes.items.append(
                _("This needs an approver under your organisation's spending policy: ")
                + " ".join(reasons)
                + _(" Confirming asks them; nothing is bought until one approves.")
            )

    async def _not_offered(self, command: Command, match: Match[OfferedProduct]) -> Answer:
        catalog = Matcher(await self._catalog_candidates()).match(command.product)
        if catalog.found and len(catalog.found) <= 3:
            names = " or ".join(candidate.name for candidate in catalog.found)
            return Answer(
                _(
                    "Your reseller has no price for {names} for your organisation, so it cannot be bought "
                    "here. Ask your reseller to price it.",
                    names=names,
                )
            )
        if not match.suggestions:
            return Answer(
                _(
                    "I do not know a product called “{product}” that you can buy. Type **add subscription** to "
                    "browse what you can.",
                    product=command.product,
                ),
                suggestions=("add subscription",),
            )
        return _did_you_mean(
            _("I do not know a product called “{product}” that you can buy.", product=command.product),
            command,
            match.suggestions,
        )

    # --- people and licences ------------------------------------------------------------------------

    async def people(self, caller: Caller) -> list[Person]:
        ctx = await self._users.context(caller)  # admins only
        async with self._sessions() as session:
            rows = await session.scalars(
                select(TenantUser)
                .where(TenantUser.organisation_id == ctx.organisation_id)
                .order_by(TenantUser.display_name)
            )
            return [
                Person(
                    row.user_id,
                    row.display_name or row.user_principal_name,
                    row.user_principal_name,
                    row.usage_location,
                    tuple(row.licence_sku_ids or ()),
                )
                for row in rows
            ]

    async def find_person(self, caller: Caller, typed: str, pins: Mapping[str, str]) -> Person | Answer | Choose:
        people = await self.people(caller)
        pinned = pins.get(USER)
        if pinned:
            person = next((p for p in people if p.user_id == pinned.lower()), None)
            return person if person is not None else Answer(_("That user is not in your tenant any more."))
        match = Matcher(
            [
                Candidate(
                    person,
                    person.display_name,
                    keys=(person.user_principal_name,),
                    aliases=(person.user_principal_name.split("@", 1)[0].replace(".", " "),),
                )
                for person in people
            ],
            min_prefix=3,
            strict_keys=True,
        ).match(typed)
        picked = _one_or_choice(
            match,
            _("Which person do you mean by “{typed}”?", typed=typed),
            USER,
            lambda p: (p.display_name, p.user_principal_name, p.user_id),
        )
        if picked is not None:
            return picked
        if match.suggestions:
            return Answer(
                _("“{typed}” is not a user of your tenant. Did you mean ", typed=typed)
                + " or ".join(f"**{name}**" for name in match.suggestions)
                + "?"
            )
        return Answer(_("“{typed}” is not a user of your tenant. Type **users** to see who is.", typed=typed))

    async def find_pool(
        self, caller: Caller, typed: str, pins: Mapping[str, str], pools: Sequence[PoolView] | None = None
    ) -> PoolView | Answer | Choose:
        pools = list(pools if pools is not None else await self._licences.pools(caller, refresh=True))
        pinned = pins.get(LICENCE)
        if pinned:
            pool = next((p for p in pools if p.licence_sku_id == pinned.lower()), None)
            return pool if pool is not None else Answer(_("That licence product is not one your organisation has."))
        match = Matcher(
            [
                Candidate(
                    pool,
                    pool.name,
                    keys=(pool.licence_sku_id, pool.sku_part_number),
                    aliases=tuple(sub.name for sub in pool.subscriptions),
                )
                for pool in pools
            ]
        ).match(typed)
        picked = _one_or_choice(
            match,
            _("Which licence do you mean by “{typed}”?", typed=typed),
            LICENCE,
            lambda p: (
                p.name,
                _("{available} of {active} free", available=p.available, active=p.active),
                p.licence_sku_id,
            ),
        )
        if picked is not None:
            return picked
        if not pools:
            return Answer(_("Your organisation has no licences yet."), suggestions=("add subscription",))
        catalog = Matcher(await self._catalog_candidates()).match(typed)
        if (
            catalog.found
            and len(catalog.found) <= 3
            and not any(c.name in {p.name for p in pools} for c in catalog.found)
        ):
            names = " or ".join(candidate.name for candidate in catalog.found)
            return Answer(
                _("Your organisation has no {names} licences.", names=names),
                suggestions=(f"buy 1 {catalog.found[0].name}",),
            )
        return Answer(
            _("Your organisation has no licence called “{typed}”. It has ", typed=typed)
            + ", ".join(f"**{pool.name}**" for pool in pools)
            + "."
        )

    async def _licence_change(self, caller: Caller, command: Command, pins: Mapping[str, str]) -> Outcome:
        person = await self.find_person(caller, command.person, pins)
        if not isinstance(person, Person):
            return person
        pools = await self._licences.pools(caller, refresh=True)
        if command.kind is Kind.UNASSIGN:
            held = [pool for pool in pools if pool.licence_sku_id in person.licence_sku_ids]
            pool = await self.find_pool(caller, command.product, pins, held)
            if isinstance(pool, Answer) and held:
                names = ", ".join(p.name for p in held)
                return Answer(
                    _(
                        "{display_name} holds no licence called “{product}”; they hold {names}.",
                        display_name=person.display_name,
                        product=command.product,
                        names=names,
                    )
                )
            if isinstance(pool, Answer):
                return Answer(_("{display_name} holds no licences.", display_name=person.display_name))
            if not isinstance(pool, PoolView):
                return pool
            return LicenceAction(Kind.UNASSIGN, person, pool, "")
        pool = await self.find_pool(caller, command.product, pins, pools)
        if not isinstance(pool, PoolView):
            return pool
        if pool.licence_sku_id in person.licence_sku_ids:
            return Answer(
                _("{display_name} already has a licence for {name}.", display_name=person.display_name, name=pool.name)
            )
        if pool.available < 1:
            subscription = pool.subscriptions[0].name if pool.subscriptions else pool.name
            return Answer(
                _(
                    "No {name} licence is free: {consumed} of {active} are assigned. Add a seat first, then assign it.",
                    name=pool.name,
                    consumed=pool.consumed,
                    active=pool.active,
                ),
                suggestions=(f"add 1 seat to {subscription}",),
            )
        location = "" if person.usage_location else (await self._users.context(caller)).country
        return LicenceAction(Kind.ASSIGN, person, pool, location)

    async def _licence_question(self, caller: Caller, command: Command, pins: Mapping[str, str]) -> Outcome:
        pool = await self.find_pool(caller, command.product, pins)
        if not isinstance(pool, PoolView):
            return pool
        sources = "; ".join(
            f"{sub.name}: {formatting.seats(sub.quantity)} ({sub.status})" for sub in pool.subscriptions
        )
        if command.kind is Kind.FREE_SEATS:
            free = _(
                "{available} of {active} {name} licences are free ({consumed} assigned).",
                available=pool.available,
                active=pool.active,
                name=pool.name,
                consumed=pool.consumed,
            )
            return Answer(free + (_(" From {sources}.", sources=sources) if sources else ""), title=pool.name)
        holders = [p for p in await self.people(caller) if pool.licence_sku_id in p.licence_sku_ids]
        if not holders:
            return Answer(
                _("Nobody has a licence for {name} ({active} bought).", name=pool.name, active=pool.active),
                title=pool.name,
            )
        return Answer(
            ngettext(
                "{n} person has a licence for {name} ({available} of {active} free):",
                "{n} people have a licence for {name} ({available} of {active} free):",
                len(holders),
                name=pool.name,
                available=pool.available,
                active=pool.active,
            ),
            lines=tuple(f"{p.display_name} ({p.user_principal_name})" for p in holders),
            title=pool.name,
        )


def _did_you_mean(said: str, command: Command, names: Sequence[str]) -> Answer:
    return Answer(
        _("{said} Did you mean ", said=said) + " or ".join(f"**{name}**" for name in names) + "?",
        suggestions=tuple(_retyped(command, name) for name in names),
    )


def _one_or_choice(
    match: Match[V], question: str, slot: str, option: Callable[[V], tuple[str, str, str]]
) -> V | Choose | None:
    """The one thing matched, or a choice among several (at most ten); None when nothing matched."""
    if match.one is not None:
        return match.one.value
    if match.ambiguous:
        return Choose(question, slot, tuple(Option(*option(c.value)) for c in match.found[:10]))
    return None


def _wanted_status(kind: Kind) -> str:
    return "suspended" if kind is Kind.REACTIVATE else "active"


def _quantity_problem(command: Command) -> Answer | None:
    """A seat command needs a number of seats; the bounds of the product are the planner's."""
    if command.kind not in SEAT_KINDS:
        return None
    n = command.quantity
    if n is None:
        return Answer(_("How many seats? For example **add 5 seats to {product}**.", product=command.product))
    if command.kind is Kind.ADD_SEATS and n < 1:
        if n < 0:
            again = f"remove {formatting.plural(-n, 'seat', 'seats', 'en')} from {command.product}"  # a command
            return Answer(_("To remove seats, say **{again}**.", again=again), suggestions=(again,))
        return Answer(_("Adding 0 seats changes nothing. Say how many to add, at least 1."))
    if command.kind is Kind.REMOVE_SEATS and n < 1:
        if n < 0:
            again = f"add {formatting.plural(-n, 'seat', 'seats', 'en')} to {command.product}"  # a command
            return Answer(_("To add seats, say **{again}**.", again=again), suggestions=(again,))
        return Answer(_("Removing 0 seats changes nothing. Say how many to remove, at least 1."))
    if command.kind is Kind.SET_SEATS and n < 0:
        return Answer(_("A subscription cannot have fewer than 0 seats. Say the number of seats it should have."))
    return None


def _new_quantity(command: Command, current: int) -> int:
    n = command.quantity or 0
    if command.kind is Kind.ADD_SEATS:
        return current + n
    if command.kind is Kind.REMOVE_SEATS:
        return current - n
    return n


def _renewal_text(view: SubscriptionView) -> str:
    when = formatting.date(view.renewal_date)
    state = _(" It is suspended.") if view.status == "suspended" else ""
    if not view.auto_renew:
        return _("{name} ends on {when}: auto-renew is off.{state}", name=view.name, when=when, state=state)
    seats = view.scheduled_quantity if view.scheduled_quantity is not None else view.quantity
    return _(
        "{name} renews on {when} with {seats} ({get} billed {billing_cycle}; the price is locked until then).{state}",
        name=view.name,
        when=when,
        seats=formatting.seats(seats),
        get=_(_TERM_WORDS.get(view.term_duration, view.term_duration)),
        billing_cycle=view.billing_cycle,
        state=state,
    )


def _from_price(item: OfferedProduct) -> str:
    cheapest = min(item.terms, key=lambda term: term.price.amount)
    return formatting.unit_price(cheapest.price.amount, cheapest.price.currency, cheapest.billing_cycle)


def _retyped(command: Command, name: str) -> str:
    """The command again with the suggested product name in place of what was typed."""
    typed = command.product
    text = " ".join(command.text.split())
    index = text.lower().rfind(typed.lower()) if typed else -1
    return text[:index] + name + text[index + len(typed) :] if index >= 0 else text


def command_service(services: Services) -> CommandService:
    """The command service over the app's services (the same ones the full tasks use)."""
    return CommandService(
        services.sessions,
        subscriptions=services.subscriptions,
        changes=services.subscription_changes,
        approvals=services.approvals,
        ordering=services.ordering,
        catalog=services.catalog,
        users=services.users,
        licences=services.licences,
        spending=services.spending,
    )
