"""People joining and leaving in one flow: "new user Diego Siciliani with Business Standard" and
"offboard diego". Each is planned first (what will happen, what it costs) and then run on one
confirm as a series of steps through the services the full tasks use — users, licences and
subscription changes, with their own role checks, Microsoft's rules and idempotency keys derived
from the card's key. A step Microsoft refuses stops the steps that depend on it; every step's
outcome is reported, and running the same card again (Retry) skips what was done. One audit entry
records the whole flow next to the entries of its steps.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit, formatting
from services.access import Caller
from services.commands.service import Answer, Choose, CommandService, Person
from services.container import Services
from services.errors import DomainError, InvalidInput
from services.i18n import _
from services.partner_center import PartnerCenterClient
from services.partner_center.models import CustomerUser, PasswordProfile
from services.subscriptions import QuantityPlan, SubscriptionChanges, SubscriptionService, SubscriptionView
from services.subscriptions.changes import seats_spend
from services.users.licences import LicenceService, PoolView
from services.users.passwords import generate_password
from services.users.service import NewUser, UserService

log = logging.getLogger(__name__)

REFUND, RENEWAL, KEEP = "refund", "renewal", "keep"
_USER_NAME = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    message: str


@dataclass(frozen=True)
class FlowResult:
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)


@dataclass(frozen=True)
class OnboardingPlan:
    first_name: str
    last_name: str
    display_name: str
    user_name: str
    domains: tuple[str, ...]
    usage_location: str
    password_email: str
    pool: PoolView
    seat: QuantityPlan | None  # one more seat to buy (charge now, new cost); None when one is free
    seat_needs_approver: str = ""  # why buying that seat needs an approver (the spending policy)


@dataclass(frozen=True)
class FreedSeat:
    """A licence the leaver holds, the subscription its seat is in, and what may become of the seat."""

    licence_sku_id: str
    licence_name: str
    subscription_id: str
    subscription_name: str
    quantity: int
    choices: tuple[tuple[str, str], ...]  # (value, what it does and costs)
    default: str


@dataclass(frozen=True)
class OffboardingPlan:
    person: Person
    seats: tuple[FreedSeat, ...]
    other_licences: tuple[str, ...] = field(default=())  # held but fed by no subscription of ours


def _user_name(first: str, last: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", f"{first}.{last}".strip(".")).encode("ascii", "ignore").decode()
    return _USER_NAME.sub("", ascii_name.lower().replace(" ", ".")).strip(".")[:64]


def _split_name(name: str) -> tuple[str, str]:
    words = name.split()
    if not words:
        return "", ""
    if all(word.islower() for word in words):  # typed in lower case: names are capitalised
        words = [word.capitalize() for word in words]
    return words[0], " ".join(words[1:])


class PeopleFlows:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        commands: CommandService,
        *,
        users: UserService,
        licences: LicenceService,
        subscriptions: SubscriptionService,
        changes: SubscriptionChanges,
        partner_center: PartnerCenterClient,
    ) -> None:
        self._client = partner_center
        self._sessions = sessions
        self._commands = commands
        self._users = users
        self._licences = licences
        self._subscriptions = subscriptions
        self._changes = changes

    # --- onboarding ---------------------------------------------------------------------------------

    async def plan_onboarding(
        self, caller: Caller, name: str, product: str, pins: Mapping[str, str]
    ) -> OnboardingPlan | Answer | Choose:
        defaults = await self._users.new_user_defaults(caller)  # admins only; the tenant's domains
        pools = await self._licences.pools(caller, refresh=True)
        pool = await self._commands.find_pool(caller, product, pins, pools)
        if not isinstance(pool, PoolView):
            return pool
        seat, needs = None, ""
        if pool.available < 1:
            feeding = [sub for sub in pool.subscriptions if sub.status == "active"]
            if not feeding:
                return Answer(_("No {name} licence is free and no active subscription feeds it.", name=pool.name))
            sub = feeding[0]
            seat = await self._changes.plan_quantity(caller, sub.subscription_id, sub.quantity + 1)
            if self._changes.spending is not None:
                reasons, _unused = await self._changes.spending.reasons(caller.organisation_id, seats_spend(seat))
                needs = " ".join(reasons)
        first, last = _split_name(name)
        return OnboardingPlan(
            first_name=first,
            last_name=last,
            display_name=" ".join(part for part in (first, last) if part),
            user_name=_user_name(first, last),
            domains=tuple(defaults.domains),
            usage_location=defaults.usage_location,
            password_email=caller.email,
            pool=pool,
            seat=seat,
            seat_needs_approver=needs,
        )

    async def onboard(self, caller: Caller, values: Mapping[str, Any], key: str) -> FlowResult:
        """Create the user, buy the seat the card offered (if any), assign the licence."""
        steps: list[Step] = []
        form = NewUser(**{name: _text(values, name) for name in NewUser.__dataclass_fields__})
        try:
            created = await self._users.create_user(caller, form, request_key=f"{key}:user")
        except DomainError as error:
            return await self._audited(
                caller, "user.onboard", form.display_name, [Step(_("Create the user"), False, error.message)]
            )
        mail = (
            _("; the password was e-mailed to {password_sent_to}", password_sent_to=created.password_sent_to)
            if created.password_sent_to
            else ""
        )
        steps.append(Step(_("Create the user"), True, f"{created.user_principal_name}{mail}"))
        subscription_id = _text(values, "subscription_id")
        if subscription_id:
            try:
                view = await self._subscriptions.get(caller, subscription_id)
                plan = await self._changes.plan_quantity(caller, subscription_id, view.quantity + 1)
                result = await self._changes.change_quantity(
                    caller, subscription_id, plan.new, etag=plan.etag, key=f"{key}:seat"
                )
                steps.append(
                    Step(_("Buy one more seat"), True, _("already added") if result.repeated else result.message)
                )
            except DomainError as error:
                steps.append(Step(_("Buy one more seat"), False, error.message))
                return await self._audited(caller, "user.onboard", created.user_principal_name, steps)
        licence = _text(values, "licence")
        try:
            await self._licences.pools(caller, refresh=True)  # the pool as Microsoft counts it now
            outcome = await self._licences.assign(
                caller, [created.user_id], licence, request_key=f"{key}:licence", usage_location=form.usage_location
            )
            failed = [result.message for result in outcome.results if not result.ok]
            if failed:
                steps.append(Step(_("Assign the licence"), False, failed[0]))
            else:
                steps.append(
                    Step(_("Assign the licence"), True, _("already done") if outcome.already_done else "assigned")
                )
        except DomainError as error:
            steps.append(Step(_("Assign the licence"), False, error.message))
        return await self._audited(caller, "user.onboard", created.user_principal_name, steps)

    # --- offboarding --------------------------------------------------------------------------------

    async def plan_offboarding(
        self, caller: Caller, typed: str, pins: Mapping[str, str]
    ) -> OffboardingPlan | Answer | Choose:
        person = await self._commands.find_person(caller, typed, pins)
        if not isinstance(person, Person):
            return person
        detail = await self._users.get_user(caller, person.user_id)  # licences as Microsoft has them now
        pools = {pool.licence_sku_id: pool for pool in await self._licences.pools(caller, refresh=True)}
        seats: list[FreedSeat] = []
        others: list[str] = []
        for licence in detail.licences:
            pool = pools.get(licence.licence_sku_id)
            live = [sub for sub in (pool.subscriptions if pool else []) if sub.status == "active"]
            if not live:
                others.append(licence.name)
                continue
            views = [await self._subscriptions.get(caller, sub.subscription_id) for sub in live]
            view = max(views, key=lambda v: (v.refundable, v.quantity))  # the seat most worth giving back
            seats.append(await self._freed_seat(caller, licence.licence_sku_id, licence.name, view))
        return OffboardingPlan(
            Person(person.user_id, detail.display_name, detail.user_principal_name, detail.usage_location),
            tuple(seats),
            tuple(others),
        )

    async def _freed_seat(self, caller: Caller, sku: str, name: str, view: SubscriptionView) -> FreedSeat:
        """What may become of the seat: a refund inside its 7-day window, a lower quantity from the
        renewal, or kept free; the default is the cheapest of them that Microsoft allows."""
        choices: list[tuple[str, str]] = []
        now = self._subscriptions.clock.now()
        windows = [until for seats, until in view.refundable_batches if seats > 0 and until > now]
        if view.quantity > 1 and windows:
            refund = ""
            try:
                plan = await self._changes.plan_quantity(caller, view.id, view.quantity - 1)
                if plan.kind == "decrease" and plan.charge_now is not None:
                    refund = _(" ({money} back)", money=formatting.money(abs(plan.charge_now.amount), plan.currency))
            except InvalidInput:  # the seat is still assigned to this person: priced once it is free
                refund = ""
            until = formatting.datetime_utc(max(windows))
            choices.append(
                (
                    REFUND,
                    _("Remove the seat now with a refund{refund}; possible until {until}", refund=refund, until=until),
                )
            )
        if view.quantity > 1 and view.auto_renew:
            base = view.scheduled_quantity if view.scheduled_quantity is not None else view.quantity
            seats = formatting.seats(base - 1)
            choices.append(
                (
                    RENEWAL,
                    _(
                        "Renew with {seats} on {date} (paid until then)",
                        seats=seats,
                        date=formatting.date(view.renewal_date),
                    ),
                )
            )
        choices.append((KEEP, _("Keep the seat free for the next person (still paid)")))
        return FreedSeat(sku, name, view.id, view.name, view.quantity, tuple(choices), choices[0][0])

    async def offboard(self, caller: Caller, user_id: str, choices: Mapping[str, str], key: str) -> FlowResult:
        """Block sign-in, remove every licence, then do with each freed seat what the admin chose."""
        person = await self._commands.find_person(caller, "", {"user": user_id})
        if not isinstance(person, Person):
            raise InvalidInput(_("That user is not in your tenant any more."))
        ctx = await self._users.context(caller)
        steps: list[Step] = []
        try:
            # Partner Center cannot disable an account: a new password nobody is told blocks sign-in
            # and keeps the account (and its mailbox) restorable.
            await self._client.update_user(
                ctx.customer_id,
                person.user_id,
                CustomerUser(
                    password_profile=PasswordProfile(password=generate_password(), force_change_password=True)
                ),
            )
            steps.append(Step(_("Block sign-in"), True, _("the password was replaced by one nobody is told")))
        except DomainError as error:
            steps.append(Step(_("Block sign-in"), False, error.message))
            return await self._audited(caller, "user.offboard", person.user_principal_name, steps)
        detail = await self._users.get_user(caller, person.user_id)
        held = [licence.licence_sku_id for licence in detail.licences]
        if held:
            try:
                outcome = await self._licences.unassign(caller, person.user_id, held, request_key=f"{key}:licences")
                failed = [result.message for result in outcome.results if not result.ok]
                steps.append(
                    Step(_("Remove every licence"), not failed, failed[0] if failed else _licences_removed(detail))
                )
            except DomainError as error:
                steps.append(Step(_("Remove every licence"), False, error.message))
            if not steps[-1].ok:
                return await self._audited(caller, "user.offboard", person.user_principal_name, steps)
        else:
            steps.append(Step(_("Remove every licence"), True, _("no licences were left")))
        for sku, choice in choices.items():
            steps.append(await self._free_seat(caller, sku, choice, f"{key}:seat:{sku}"))
        return await self._audited(caller, "user.offboard", person.user_principal_name, steps)

    async def _free_seat(self, caller: Caller, sku: str, choice: str, key: str) -> Step:
        subscription_id, _unused, what = choice.partition(":")
        try:
            view = await self._subscriptions.get(caller, subscription_id)
            if view.licence_sku_id.lower() != sku.lower():
                raise InvalidInput(_("That subscription does not feed this licence."))
            name = _("{name}: the freed seat", name=view.name)
            if what == REFUND:
                plan = await self._changes.plan_quantity(caller, view.id, view.quantity - 1)
                result = await self._changes.change_quantity(caller, view.id, plan.new, etag=plan.etag, key=key)
                return Step(name, True, _("already removed") if result.repeated else result.message)
            if what == RENEWAL:
                base = view.scheduled_quantity if view.scheduled_quantity is not None else view.quantity
                plan = await self._changes.plan_quantity(caller, view.id, base - 1)
                result = await self._changes.schedule_quantity(caller, view.id, plan.new, etag=plan.etag, key=key)
                return Step(name, True, _("already scheduled") if result.repeated else result.message)
            return Step(name, True, _("kept free for the next person"))
        except DomainError as error:
            return Step(_("{sku}: the freed seat", sku=sku), False, error.message)

    async def _audited(self, caller: Caller, action: str, target: str, steps: list[Step]) -> FlowResult:
        async with self._sessions() as session:
            audit.record(
                session,
                actor=caller.actor,
                action=action,
                organisation_id=caller.organisation_id,
                target=target,
                after={"steps": [{"step": s.name, "ok": s.ok, "outcome": s.message} for s in steps]},
            )
            await session.commit()
        return FlowResult(tuple(steps))


def _licences_removed(detail: Any) -> str:
    names = ", ".join(licence.name for licence in detail.licences)
    return _("removed {names}", names=names)


def _text(values: Mapping[str, Any], key: str, limit: int = 256) -> str:
    value = values.get(key)
    return str(value).strip()[:limit] if isinstance(value, str | int) else ""


def people_flows(services: Services, commands: CommandService) -> PeopleFlows:
    return PeopleFlows(
        services.sessions,
        commands,
        users=services.users,
        licences=services.licences,
        subscriptions=services.subscriptions,
        changes=services.subscription_changes,
        partner_center=services.partner_center,
    )
