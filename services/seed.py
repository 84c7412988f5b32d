"""The demo organisation of the embedded default: a complete profile whose admin is the Agents
Playground's current user and whose approver is another Playground user. Idempotent."""

from __future__ import annotations

import logging

from services.errors import Conflict, NotFound
from services.organisations import OrganisationService

log = logging.getLogger(__name__)

DEMO_SLUG = "contoso"
# The Agents Playground's fixed identities (its default configuration).
PLAYGROUND_TENANT_ID = "00000000-0000-0000-0000-0000000000001"
PLAYGROUND_ADMIN = ("alexw@example.com", "Alex Wilber", "user-id-0", "00000000-0000-0000-0000-0000000000020")
PLAYGROUND_APPROVER = ("meganb@example.com", "Megan Bowen", "user-id-1", "00000000-0000-0000-0000-0000000000021")

DEMO_PROFILE = {
    "name": "Contoso Ltd",
    "address_line1": "1 Microsoft Way",
    "address_line2": "",
    "city": "Redmond",
    "state": "WA",
    "postal_code": "98052",
    "country": "US",
    "contact_first_name": "Alex",
    "contact_last_name": "Wilber",
    "contact_email": "alexw@example.com",
    "contact_phone": "+1 425 555 0100",
    "culture": "en-US",
    "language": "en",
    "domain_prefix": "contosodemo",
}


async def seed_demo_organisation(organisations: OrganisationService) -> bool:
    """Create the demo organisation unless it exists; True when it was created now."""
    try:
        await organisations.get(DEMO_SLUG)
        return False
    except NotFound:
        pass
    actor = "system:seed"
    try:
        await organisations.create(DEMO_SLUG, DEMO_PROFILE, actor=actor)
    except Conflict:  # another replica seeded it a moment ago
        return False
    await organisations.link_teams_tenant(DEMO_SLUG, PLAYGROUND_TENANT_ID, actor=actor)
    for (email, name, user_id, object_id), roles in (
        (PLAYGROUND_ADMIN, ["admin", "billing"]),
        (PLAYGROUND_APPROVER, ["approver"]),
    ):
        await organisations.add_member(
            DEMO_SLUG,
            email,
            roles,
            actor=actor,
            display_name=name,
            channel_user_id=user_id,
            aad_object_id=object_id,
        )
    log.info("seeded the demo organisation %r", DEMO_SLUG)
    return True
