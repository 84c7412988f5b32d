"""The tasks the bot offers: the command that starts each, its menu entry and who may use it.

Read as one table (entry points of the conversation); each later feature adds a row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from microsoft_agents.activity import AdaptiveCardInvokeResponse, InvokeResponse
from microsoft_agents.hosting.core import StatePropertyAccessor, TurnContext

from cards.common import MenuEntry
from dialogs.sdk import Dialog, DialogSet
from services.access import Caller
from services.i18n import _
from services.roles import Permission

# Action.Execute verbs (`adaptiveCard/action`): (turn, caller, data) -> the invoke's answer.
CardActionHandler = Callable[[TurnContext, Caller, dict[str, Any]], Awaitable[AdaptiveCardInvokeResponse]]
# Other invokes by name (`composeExtension/query`, `fileConsent/invoke`): the caller may be None.
NamedInvokeHandler = Callable[[TurnContext, "Caller | None"], Awaitable[InvokeResponse]]


@dataclass(frozen=True)
class Task:
    command: str
    title: str
    description: str
    dialog: Dialog
    permission: Permission
    aliases: tuple[str, ...] = field(default=())
    # Words that start the task with more words after them ("billing 2026-09"); the dialog reads
    # the whole text.
    prefixes: tuple[str, ...] = field(default=())
    # What can be typed to go straight to a result ("billing last month", what it does); `help` lists them.
    shortcuts: tuple[tuple[str, str], ...] = field(default=())
    card_actions: Mapping[str, CardActionHandler] = field(default_factory=dict)
    invokes: Mapping[str, NamedInvokeHandler] = field(default_factory=dict)
    # Text the task takes that no command, alias or prefix names (the one-line commands: "add 5
    # seats to E3"); asked only after every task's own words, so those always win.
    recognise: Callable[[str], bool] | None = None
    examples: tuple[str, ...] = field(default=())  # shown by "help"

    def matches(self, words: str) -> bool:
        return (
            words == self.command
            or words in self.aliases
            or any(words == prefix or words.startswith(prefix + " ") for prefix in self.prefixes)
        )


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

    def card_actions(self) -> dict[str, CardActionHandler]:
        return {verb: handler for task in self._tasks for verb, handler in task.card_actions.items()}

    def invokes(self) -> dict[str, NamedInvokeHandler]:
        return {name: handler for task in self._tasks for name, handler in task.invokes.items()}

    def find(self, words: str) -> Task | None:
        named = next((task for task in self._tasks if task.matches(words)), None)
        if named is not None or not words:
            return named
        return next((task for task in self._tasks if task.recognise is not None and task.recognise(words)), None)

    def examples_for(self, caller: Caller) -> list[str]:
        """Example commands of the tasks the caller may use (for "help")."""
        return [example for task in self._tasks if caller.can(task.permission) for example in task.examples]

    def commands(self) -> list[str]:
        return [name for task in self._tasks for name in (task.command, *task.aliases)]

    def menu_for(self, caller: Caller) -> list[MenuEntry]:
        return [
            MenuEntry(
                task.command,
                _(task.title),
                _(task.description),
                tuple((typed, _(what)) for typed, what in task.shortcuts),
            )
            for task in self._tasks
            if caller.can(task.permission)
        ]

    def title_of(self, dialog_id: str | None) -> str | None:
        return next((_(task.title) for task in self._tasks if task.dialog.id == dialog_id), None)

    def describe(self, dialog_id: str) -> tuple[str, str] | None:
        """A task's title and the command that starts it, by its dialog id."""
        return next(((_(task.title), task.command) for task in self._tasks if task.dialog.id == dialog_id), None)
