"""The bot's task list, built from the services. Each feature adds its row here."""

from __future__ import annotations

from collections.abc import Callable

from microsoft_agents.activity import Activity

from dialogs.add_subscription import add_subscription_tasks, render_order_job
from dialogs.add_tenant import AddTenantDialog, MyServicesDialog, tenant_job_renderers
from dialogs.billing import billing_tasks
from dialogs.catalogue import Task
from dialogs.commands import command_tasks
from dialogs.renewals import RenewalsDialog
from dialogs.subscriptions import SubscriptionsDialog
from dialogs.users import ASSIGN, NEW, UsersDialog
from dialogs.warning_settings import WarningSettingsDialog
from services.container import Services
from services.i18n import N_
from services.jobs import JobView
from services.ordering import ORDER_JOB
from services.roles import Permission
from services.tenants import CREATE_JOB as TENANT_CREATE_JOB


def default_tasks(services: Services) -> list[Task]:
    return [
        Task(
            "add tenant",
            N_("Add tenant"),
            N_("Link your Microsoft 365 tenant or create a new one"),
            AddTenantDialog(services.tenants),
            Permission.MANAGE_SERVICES,
            aliases=("link tenant", "new tenant", "create tenant"),
        ),
        Task(
            "my services",
            N_("My services"),
            N_("Your Microsoft 365 service with your reseller"),
            MyServicesDialog(services.tenants),
            Permission.READ_SUBSCRIPTIONS,
            aliases=("services", "my service"),
        ),
        # Users and licences
        Task(
            "users",
            N_("Users"),
            N_("Your tenant's users and their licences"),
            UsersDialog(services, "users_dialog"),
            Permission.MANAGE_SERVICES,
            aliases=("user list", "list users"),
        ),
        Task(
            "new user",
            N_("New user"),
            N_("Create a user in your tenant (password e-mailed)"),
            UsersDialog(services, "new_user_dialog", start=NEW),
            Permission.MANAGE_SERVICES,
            aliases=("add user", "create user"),
        ),
        Task(
            "assign",
            N_("Assign licences"),
            N_("Give users licences from your subscriptions"),
            UsersDialog(services, "assign_dialog", start=ASSIGN),
            Permission.MANAGE_SERVICES,
            aliases=("assign licences", "assign licenses", "licences", "licenses"),
        ),
        *add_subscription_tasks(services),
        *billing_tasks(services),
        Task(
            "subscriptions",
            N_("Subscriptions"),
            N_("See your subscriptions; change seats, add-ons, cancel, auto-renew, suspend"),
            SubscriptionsDialog(services),
            Permission.READ_SUBSCRIPTIONS,
            aliases=("my subscriptions", "subscription"),
        ),
        Task(
            "renewals",
            N_("Renewals"),
            N_("What renews in the next 90 days, what it will cost and what is scheduled"),
            RenewalsDialog(services),
            Permission.READ_SUBSCRIPTIONS,
            aliases=("renewal", "upcoming renewals"),
        ),
        Task(
            "warning settings",
            N_("Warning settings"),
            N_("Which warnings your admins get (seat windows, renewals, idle licences), when, and quiet hours"),
            WarningSettingsDialog(services),
            Permission.MANAGE_SERVICES,
            aliases=("warnings", "warnings settings", "notification settings"),
        ),
        # One-line commands: last, so every task's own words are matched first.
        *command_tasks(services),
    ]


def job_renderers() -> dict[str, Callable[[JobView], Activity]]:
    """How each feature's durable jobs tell their outcome (kinds without one get a plain message)."""
    return {**tenant_job_renderers(), ORDER_JOB: render_order_job}


def job_follow_ups() -> dict[str, str]:
    """The task that starts by itself once a job succeeded (job kind -> command): after the tenant is
    created the bot moves straight on to buying its first subscription."""
    return {TENANT_CREATE_JOB: "add subscription"}
