"""Reading who is calling from an activity, and asking the conversation roster for their e-mail."""

from __future__ import annotations

import logging
from typing import Any

from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import ConnectorClientBase, TurnContext

from services.access import ChannelIdentity

log = logging.getLogger(__name__)
CONNECTOR_CLIENT_KEY = "ConnectorClient"


def tenant_id_of(activity: Activity) -> str | None:
    """Teams puts the tenant in channelData.tenant.id (and often conversation.tenantId)."""
    channel_data = activity.channel_data
    tenant: Any = None
    if isinstance(channel_data, dict):
        tenant = channel_data.get("tenant")
        tenant = tenant.get("id") if isinstance(tenant, dict) else None
    elif channel_data is not None:
        tenant = getattr(getattr(channel_data, "tenant", None), "id", None)
    if not (isinstance(tenant, str) and tenant) and activity.conversation is not None:
        tenant = activity.conversation.tenant_id
    return tenant.lower() if isinstance(tenant, str) and tenant else None


def channel_identity(activity: Activity) -> ChannelIdentity:
    sender = activity.from_property
    return ChannelIdentity(
        tenant_id=tenant_id_of(activity),
        aad_object_id=(sender.aad_object_id if sender is not None else None) or None,
        channel_user_id=(sender.id if sender is not None else "") or "",
        name=(sender.name if sender is not None else "") or "",
    )


async def roster_email(context: TurnContext) -> str | None:
    """The sender's e-mail/UPN from the conversation roster (Teams' get-member call), if reachable."""
    client = context.turn_state.get(CONNECTOR_CLIENT_KEY)
    activity = context.activity
    if not isinstance(client, ConnectorClientBase) or activity.conversation is None or activity.from_property is None:
        return None
    try:
        member = await client.conversations.get_conversation_member(activity.conversation.id, activity.from_property.id)
    except Exception as error:  # noqa: BLE001 - the roster is a convenience: a failure just means "unknown caller"
        log.warning("could not read the conversation roster: %s", type(error).__name__)
        return None
    extra = member.model_extra or {}
    for field in ("userPrincipalName", "email", "user_principal_name"):
        value = extra.get(field)
        if isinstance(value, str) and "@" in value:
            return value
    return None
