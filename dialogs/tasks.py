"""The bot's task list, built from the services: the one place that opens the `Services` bundle and
hands each dialog only what it uses. Each feature adds its row here."""

from __future__ import annotations

from collections.abc import Callable

from microsoft_agents.activity import Activity

from dialogs.add_subscription import AddSubscriptionDialog, add_subscription_tasks, render_order_job
from dialogs.add_tenant import AddTenantDialog, MyServicesDialog, tenant_job_renderers
from dialogs.approval_delivery import ApprovalPosting
from dialogs.billing import FileUploads, billing_tasks
from dialogs.catalogue import Task
from dialogs.commands import USERS_CHILD_ID, CommandDialog, command_tasks
from dialogs.renewals import RenewalsDialog
from dialogs.subscriptions import SubscriptionsDialog
from dialogs.users import ASSIGN, LIST, NEW, UsersDialog
from dialogs.warning_settings import WarningSettingsDialog
from services.commands.people import people_flows
from services.commands.service import command_service
from services.container import Services
from services.i18n import N_
from services.jobs import JobView
from services.ordering import ORDER_JOB
from services.roles import Permission
from services.tenants import CREATE_JOB as TENANT_CREATE_JOB


def default_tasks(services: Services, uploads: FileUploads) -> list[Task]:
    """Every task, its dialog built with the services it uses; `uploads` puts billing's exports in
    OneDrive (the bot's transport, `bot/file_uploads.py`)."""
    posting = ApprovalPosting(
        services.approvals, services.conversations, services.jobs, services.access.reader_of_member
    )

    def subscriptions() -> SubscriptionsDialog:
        return SubscriptionsDialog(services.subscriptions, services.subscription_changes, services.approvals, posting)

    def add_subscription() -> AddSubscriptionDialog:
        return AddSubscriptionDialog(services.ordering, services.approvals, posting)

    def users(dialog_id: str, start: str = LIST) -> UsersDialog:
        return UsersDialog(services.users, services.licences, services.directory, dialog_id, start)

    commands = command_service(services)
    command_dialog = CommandDialog(
        commands,
        people_flows(services, commands),
        subscriptions(),
        add_subscription(),
        users(USERS_CHILD_ID),
    )
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
            users("users_dialog"),
            Permission.MANAGE_SERVICES,
            aliases=("user list", "list users"),
        ),
        Task(
            "new user",
            N_("New user"),
            N_("Create a user in your tenant (password e-mailed)"),
            users("new_user_dialog", start=NEW),
            Permission.MANAGE_SERVICES,
            aliases=("add user", "create user"),
        ),
        Task(
            "assign",
            N_("Assign licences"),
            N_("Give users licences from your subscriptions"),
            users("assign_dialog", start=ASSIGN),
            Permission.MANAGE_SERVICES,
            aliases=("assign licences", "assign licenses", "licences", "licenses"),
        ),
        *add_subscription_tasks(add_subscription()),
        *billing_tasks(services.billing, uploads),
        Task(
            "subscriptions",
            N_("Subscriptions"),
            N_("See your subscriptions; change seats, add-ons, cancel, auto-renew, suspend"),
            subscriptions(),
            Permission.READ_SUBSCRIPTIONS,
            aliases=("my subscriptions", "subscription"),
        ),
        Task(
            "renewals",
            N_("Renewals"),
            N_("What renews in the next 90 days, what it will cost and what is scheduled"),
            RenewalsDialog(services.warnings, services.subscription_changes),
            Permission.READ_SUBSCRIPTIONS,
            aliases=("renewal", "upcoming renewals"),
        ),
        Task(
            "warning settings",
            N_("Warning settings"),
            N_("Which warnings your admins get (seat windows, renewals, idle licences), when, and quiet hours"),
            WarningSettingsDialog(services.warnings.settings),
            Permission.MANAGE_SERVICES,
            aliases=("warnings", "warnings settings", "notification settings"),
        ),
        # One-line commands: last, so every task's own words are matched first.
        *command_tasks(command_dialog),
    ]


def job_renderers() -> dict[str, Callable[[JobView], Activity]]:
    """How each feature's durable jobs tell their outcome (kinds without one get a plain message)."""
    return {**tenant_job_renderers(), ORDER_JOB: render_order_job}


def job_follow_ups() -> dict[str, str]:
    """The task that starts by itself once a job succeeded (job kind -> command): after the tenant is
    created the bot moves straight on to buying its first subscription."""
    return {TENANT_CREATE_JOB: "add subscription"}
