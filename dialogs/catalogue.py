"""The tasks the bot offers: the command that starts each, its menu entry and who may use it.

Read as one table (entry points of the conversation); each later feature adds a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from microsoft_agents.hosting.core import StatePropertyAccessor
from microsoft_agents.hosting.dialogs import Dialog, DialogSet

from cards.common import MenuEntry
from services.access import Caller
from services.roles import Permission


@dataclass(frozen=True)
class Task:
    command: str
    title: str
    description: str
    dialog: Dialog
    permission: Permission
    aliases: tuple[str, ...] = field(default=())

    def matches(self, words: str) -> bool:
        return words == self.command or words in self.aliases


class TaskCatalogue:
    def __init__(self, tasks: Sequence[Task]) -> None:
        ids = [task.dialog.id for task in tasks]
        if len(set(ids)) != len(ids):
            raise ValueError("two tasks share a dialog id")
        self._tasks = tuple(tasks)

    def dialog_set(self, accessor: StatePropertyAccessor) -> DialogSet:
        dialogs = DialogSet(accessor)
        for task in self._tasks:
            dialogs.add(task.dialog)
        return dialogs

    def find(self, words: str) -> Task | None:
        return next((task for task in self._tasks if task.matches(words)), None)

    def commands(self) -> list[str]:
        return [name for task in self._tasks for name in (task.command, *task.aliases)]

    def menu_for(self, caller: Caller) -> list[MenuEntry]:
        return [
            MenuEntry(task.command, task.title, task.description) for task in self._tasks if caller.can(task.permission)
        ]

    def title_of(self, dialog_id: str | None) -> str | None:
        return next((task.title for task in self._tasks if task.dialog.id == dialog_id), None)
