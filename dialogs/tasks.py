"""The bot's task list, built from the services. Each feature adds its row here."""

from __future__ import annotations

from dialogs.catalogue import Task
from dialogs.users import ASSIGN, NEW, UsersDialog
from services.container import Services
from services.roles import Permission


def default_tasks(services: Services) -> list[Task]:
    return [
        # Users and licences (issue 8)
        Task(
            "users",
            "Users",
            "Your tenant's users and their licences",
            UsersDialog(services, "users_dialog"),
            Permission.MANAGE_SERVICES,
            aliases=("user list", "list users"),
        ),
        Task(
            "new user",
            "New user",
            "Create a user in your tenant (password e-mailed)",
            UsersDialog(services, "new_user_dialog", start=NEW),
            Permission.MANAGE_SERVICES,
            aliases=("add user", "create user"),
        ),
        Task(
            "assign",
            "Assign licences",
            "Give users licences from your subscriptions",
            UsersDialog(services, "assign_dialog", start=ASSIGN),
            Permission.MANAGE_SERVICES,
            aliases=("assign licences", "assign licenses", "licences", "licenses"),
        ),
    ]
