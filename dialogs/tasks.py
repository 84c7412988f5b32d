"""The bot's task list, built from the services. Each feature adds its row here."""

from __future__ import annotations

from dialogs.billing import billing_tasks
from dialogs.catalogue import Task
from services.container import Services


def default_tasks(services: Services) -> list[Task]:
    return [*billing_tasks(services)]
