"""The bot's `adaptiveCard/action` verbs, built from the services and the messenger. Each feature that
answers Action.Execute cards adds its handlers here (and may register its durable jobs)."""

from __future__ import annotations

from bot.approvals import approval_invoke_handlers
from bot.handler import InvokeHandler
from bot.proactive import ProactiveMessenger
from bot.warnings import warning_invoke_handlers
from services.container import Services


def default_invoke_handlers(services: Services, messenger: ProactiveMessenger) -> dict[str, InvokeHandler]:
    handlers: dict[str, InvokeHandler] = {}
    handlers.update(approval_invoke_handlers(services, messenger))
    handlers.update(warning_invoke_handlers(services, messenger))
    return handlers
