"""The bot's task list, built from the services. Each feature adds its row here."""

from __future__ import annotations

from dialogs.catalogue import Task
from dialogs.subscriptions import SubscriptionsDialog
from services.container import Services
from services.roles import Permission


def default_tasks(services: Services) -> list[Task]:
    tasks: list[Task] = []
    # issue 7: manage subscriptions (read by admin/approver/billing; changes are checked per action)
    tasks.append(
        Task(
            command="subscriptions",
            title="Subscriptions",
            description="See your subscriptions; change seats, add-ons, cancel, auto-renew, suspend",
            dialog=SubscriptionsDialog(services),
            permission=Permission.READ_SUBSCRIPTIONS,
            aliases=("my subscriptions", "subscription"),
        )
    )
    return tasks
