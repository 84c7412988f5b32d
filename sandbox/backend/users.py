"""Customer users: created (with a strong password, or by the customer's own admin elsewhere),
renamed, signed in, soft-deleted; listed in pages by keyset."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sandbox import errors as codes
from sandbox.backend.core import Actor, Resource, as_dict, as_text, decode_token, encode_token, is_strong, normalise
from sandbox.clock import iso, parse_instant
from sandbox.errors import invalid_input, invalid_property, not_found
from sandbox.resources import collection, user_json
from sandbox.store import Unit


class Users(Resource):
    async def new_user(
        self,
        tx: Unit,
        customer: dict[str, Any],
        *,
        upn: str,
        first: str,
        last: str,
        display: str,
        usage_location: str | None,
    ) -> dict[str, Any]:
        user = {
            "id": str(uuid.uuid4()),
            "customerId": customer["id"],
            "userPrincipalName": upn,
            "firstName": first,
            "lastName": last,
            "displayName": display or f"{first} {last}".strip() or upn,
            "usageLocation": usage_location or None,
            "state": "active",
            "licenses": [],
            "createdAt": iso(self.clock.now()),
            # A new user signs in once to set a password: the simulation starts their sign-ins there.
            "lastSignInDateTime": iso(self.clock.now()),
            "softDeletionTime": None,
        }
        await tx.put("user", user["id"], user, customer_id=customer["id"])
        return user

    async def find(self, tx: Unit, customer: dict[str, Any], user_id: str) -> dict[str, Any]:
        user = await tx.get("user", user_id.lower())
        if user is None or user["customerId"] != customer["id"] or user["state"] != "active":
            raise not_found(codes.USER_NOT_FOUND, f"User object Id {user_id} is not found")
        return user

    async def listing(self, tx: Unit, customer_id: str, size: int | None, token: str | None) -> dict[str, Any]:
        """Active users in creation order, paged by keyset: the continuation token names the last
        user's position, so a page reads only its own rows, and a user created or deleted between
        two pages neither shifts nor repeats the others (as Microsoft's opaque tokens behave)."""
        customer = await self.core.customer(tx, customer_id)
        wanted = size or self.settings.users_page_size
        limit = self.settings.max_page_size if wanted <= 0 else min(wanted, self.settings.max_page_size)
        scope = f"users-after:{customer['id']}"
        after = decode_token(token, scope) if token else 0
        rows = await tx.page(
            "user", customer_id=customer["id"], after=after, limit=limit + 1, where={"state": "active"}
        )
        more = len(rows) > limit
        rows = rows[:limit]
        self_uri = f"/customers/{customer['id']}/users"
        return collection(
            [user_json(user) for _, user in rows],
            self_uri,
            next_uri=f"{self_uri}?size={limit}&seekOperation=Next" if more else None,
            token=encode_token({"s": scope, "o": rows[-1][0]}) if more else None,
        )

    async def get(self, tx: Unit, customer_id: str, user_id: str) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        return user_json(await self.find(tx, customer, user_id))

    def _check_upn(self, customer: dict[str, Any], upn: str) -> None:
        local, _, domain = upn.partition("@")
        if not local or domain.lower() != customer["domain"]:
            raise invalid_property("UserPrincipalName", f"The user principal name must be <name>@{customer['domain']}.")

    async def _upn_free(self, tx: Unit, customer: dict[str, Any], upn: str, *, except_id: str | None = None) -> None:
        for other in await tx.find("user", customer_id=customer["id"], where={"userPrincipalName": upn}):
            if other["state"] == "active" and other["id"] != except_id:
                raise invalid_property("UserPrincipalName", f"{upn} already exists.", status=409)

    async def create(
        self, tx: Unit, customer_id: str, raw: Any, *, actor: Actor | None = None, require_location: bool = True
    ) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be a CustomerUser")
        upn = as_text(body.get("userPrincipalName")).lower()
        self._check_upn(customer, upn)
        await self._upn_free(tx, customer, upn)
        location = as_text(body.get("usageLocation")).upper()
        if require_location and not location:
            raise invalid_property("UsageLocation", "UsageLocation is a required field.")
        if location and not re.fullmatch(r"[A-Z]{2}", location):
            raise invalid_property("UsageLocation", "UsageLocation is a two-letter country code.")
        if not as_text(body.get("displayName")):
            raise invalid_property("DisplayName", "DisplayName is a required field.")
        profile = as_dict(body.get("passwordProfile"))
        password = as_text(profile.get("password"))
        if actor is None and not is_strong(password):
            raise invalid_property(
                "PasswordProfile", "The password needs 8+ characters from three of: upper, lower, digit, symbol."
            )
        user = await self.new_user(
            tx,
            customer,
            upn=upn,
            first=as_text(body.get("firstName")),
            last=as_text(body.get("lastName")),
            display=as_text(body.get("displayName")),
            usage_location=location or None,
        )
        await self.core.audit(
            tx,
            customer,
            "customer_user",
            "create_customer_user",
            user_json(user),
            data={"CustomerUserId": user["id"], "UserPrincipalName": upn},
            actor=actor,
        )
        force = profile.get("forceChangePassword")
        return user_json(
            user,
            password={"forceChangePassword": force if isinstance(force, bool) else True, "password": password}
            if actor is None
            else None,
        )

    async def update(
        self, tx: Unit, customer_id: str, user_id: str, raw: Any, *, actor: Actor | None = None
    ) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        user = await self.find(tx, customer, user_id)
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be a CustomerUser")
        before = user_json(user)
        operation = "update_customer_user"
        for key in ("firstName", "lastName", "displayName"):
            if isinstance(body.get(key), str) and body[key].strip():
                user[key] = body[key].strip()
        if "usageLocation" in body:
            location = as_text(body.get("usageLocation")).upper()
            if location and not re.fullmatch(r"[A-Z]{2}", location):
                raise invalid_property("UsageLocation", "UsageLocation is a two-letter country code.")
            user["usageLocation"] = location or None
        upn = as_text(body.get("userPrincipalName")).lower()
        if upn and upn != user["userPrincipalName"]:
            self._check_upn(customer, upn)
            await self._upn_free(tx, customer, upn, except_id=user["id"])
            user["userPrincipalName"] = upn
            operation = "update_customer_user_principal_name"
        await tx.put("user", user["id"], user, customer_id=customer["id"])
        after = user_json(user)
        await self.core.audit(
            tx,
            customer,
            "customer_user",
            operation,
            after,
            old_value=before,
            data={"CustomerUserId": user["id"]},
            actor=actor,
        )
        return after

    async def sign_in(self, tx: Unit, customer_id: str, user_id: str, raw: Any) -> dict[str, Any]:
        """The user signed in (at `at`, default now): what Microsoft Graph reports as
        `signInActivity.lastSignInDateTime`. Not a Partner Center operation, so not audited."""
        customer = await self.core.customer(tx, customer_id)
        user = await self.find(tx, customer, user_id)
        body = normalise(raw)
        at_text = as_text(as_dict(body).get("at"))
        try:
            at = parse_instant(at_text) if at_text else self.clock.now()
        except ValueError:
            raise invalid_input("at must be an ISO-8601 date-time") from None
        user["lastSignInDateTime"] = iso(at)
        await tx.put("user", user["id"], user, customer_id=customer["id"])
        return user_json(user)

    async def delete(self, tx: Unit, customer_id: str, user_id: str, *, actor: Actor | None = None) -> None:
        """Soft delete, as Microsoft does: the user leaves the listing and frees its licences."""
        customer = await self.core.customer(tx, customer_id)
        user = await self.find(tx, customer, user_id)
        before = user_json(user)
        user["state"] = "inactive"
        user["softDeletionTime"] = iso(self.clock.now())
        user["licenses"] = []
        await tx.put("user", user["id"], user, customer_id=customer["id"])
        await self.core.audit(
            tx,
            customer,
            "customer_user",
            "delete_customer_user",
            user_json(user),
            old_value=before,
            data={"CustomerUserId": user["id"]},
            actor=actor,
        )
