"""The bot's task list, built from the services. Each feature adds its row here."""

from __future__ import annotations

from collections.abc import Callable

from microsoft_agents.activity import Activity

from dialogs.add_tenant import AddTenantDialog, MyServicesDialog, tenant_job_renderers
from dialogs.catalogue import Task
from services.container import Services
from services.jobs import JobView
from services.roles import Permission


def default_tasks(services: Services) -> list[Task]:
    return [
        Task(
            "add tenant",
            "Add tenant",
            "Link your Microsoft 365 tenant or create a new one",
            AddTenantDialog(services.tenants),
            Permission.MANAGE_SERVICES,
            aliases=("link tenant", "new tenant", "create tenant"),
        ),
        Task(
            "my services",
            "My services",
            "Your Microsoft 365 service with your reseller",
            MyServicesDialog(services.tenants),
            Permission.READ_SUBSCRIPTIONS,
            aliases=("services", "my service"),
        ),
    ]


def job_renderers() -> dict[str, Callable[[JobView], Activity]]:
    """How each feature's durable jobs tell their outcome (kinds without one get a plain message)."""
    return {**tenant_job_renderers()}
