"""Roles and what each may do (SPEC: "A member can hold several roles")."""

from __future__ import annotations

from enum import StrEnum

from services.errors import InvalidInput


class Role(StrEnum):
    ADMIN = "admin"
    APPROVER = "approver"
    BILLING = "billing"


class Permission(StrEnum):
    """Actions gated by role. The mapping below is the SPEC's role table."""

    MANAGE_SERVICES = "manage_services"  # add/link tenant, buy, add-ons, quantity, cancel, users, licences
    REQUEST_SUSPENSION = "request_suspension"
    DECIDE_SUSPENSION = "decide_suspension"
    READ_SUBSCRIPTIONS = "read_subscriptions"
    READ_BILLING = "read_billing"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(
        {
            Permission.MANAGE_SERVICES,
            Permission.REQUEST_SUSPENSION,
            Permission.READ_SUBSCRIPTIONS,
            Permission.READ_BILLING,
        }
    ),
    Role.APPROVER: frozenset({Permission.DECIDE_SUSPENSION, Permission.READ_SUBSCRIPTIONS}),
    Role.BILLING: frozenset({Permission.READ_SUBSCRIPTIONS, Permission.READ_BILLING}),
}


def parse_role(value: str) -> Role:
    """A role from operator input, with a message that lists the valid ones."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        valid = ", ".join(role.value for role in Role)
        raise InvalidInput(f"Unknown role {value!r}; the roles are: {valid}.", field="role") from None


def permissions_of(roles: frozenset[str]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        try:
            granted |= ROLE_PERMISSIONS[Role(role)]
        except ValueError:
            continue
    return frozenset(granted)
