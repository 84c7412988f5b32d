"""The adapter's last-resort error handler (the SDK's default echoes the exception to the user).

CspBot handles its own failures; this catches what happens outside it, logs the full error with
the correlation id and shows the user only a reference.
"""

from __future__ import annotations

import logging

from microsoft_agents.hosting.core import TurnContext

from cards.common import build_error_card
from dialogs.base import card_activity
from services.logging_context import current_correlation_id, new_correlation_id

log = logging.getLogger(__name__)


async def on_turn_error(context: TurnContext, error: Exception) -> None:
    reference = current_correlation_id()
    if reference == "-":
        reference = new_correlation_id()
    log.error("unhandled turn error (reference %s)", reference, exc_info=error)
    try:
        # Straight to the adapter: the turn's reply hold (see CspBot) must not swallow this.
        reply = TurnContext.apply_conversation_reference(
            card_activity(build_error_card(reference)), context.activity.get_conversation_reference()
        )
        await context.adapter.send_activities(context, [reply])
    except Exception:
        log.exception("could not send the error card (reference %s)", reference)
