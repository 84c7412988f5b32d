"""The Agents SDK's dialogs, imported without the prompts this bot does not use.

`microsoft_agents.hosting.dialogs` imports every prompt in its `__init__`, and the date, number, confirm and
choice prompts import Microsoft's Recognizers-Text (about 250 modules, which compile large regular expressions
as they load): a third of the bot's start-up, for prompts no task uses (every step here is a card read by one
`TextPrompt`). So the SDK's three dialog packages are set up here by their own `__init__` code without the
lines that import those modules (and without `import *`). Anything else asked of a package later — a name
only those lines bind, `import *` from it — first runs the packages' full `__init__` in place, so the SDK then
looks as it always does: a name is never missing, it only comes later. (A skipped submodule imported by its own
name loads as usual.)

Import the SDK's dialog types from here. Imported after the SDK's dialogs were fully loaded (a test or tool
that imported them first), this module only re-exports them.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable
from importlib.machinery import ModuleSpec, PathFinder
from types import CodeType, ModuleType
from typing import Any

DIALOGS = "microsoft_agents.hosting.dialogs"
# The packages, in the order their `__init__` can run (the parent first, the prompts after the choices),
# and the submodules each `__init__` imports that lead to Recognizers-Text.
_SKIPPED: dict[str, frozenset[str]] = {
    DIALOGS: frozenset(),
    f"{DIALOGS}.choices": frozenset({"choice_recognizer"}),
    f"{DIALOGS}.prompts": frozenset(
        {"choice_prompt", "confirm_prompt", "datetime_prompt", "number_prompt", "prompt_culture_models"}
    ),
}
# The packages set up partially (with their specs), in the order their full `__init__` will run.
_partial: list[tuple[ModuleType, ModuleSpec]] = []


def _kept(node: ast.stmt, skipped: frozenset[str]) -> bool:
    if isinstance(node, ast.ImportFrom) and node.level == 1:
        if any(alias.name == "*" for alias in node.names):
            return False
        return (node.module or "").split(".")[0] not in skipped
    return True


def _complete_all() -> None:
    """Run every partially set-up package's full `__init__` in place (each once)."""
    while _partial:
        module, spec = _partial.pop(0)
        del module.__getattr__
        assert spec.loader is not None
        spec.loader.exec_module(module)


def _complete_on_miss(module: ModuleType) -> Callable[[str], Any]:
    def __getattr__(name: str) -> Any:  # noqa: N807  (PEP 562: called for names the module lacks)
        if name.startswith("__") or not _partial:
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
        _complete_all()
        return getattr(module, name)

    return __getattr__


def _set_up_partially() -> None:
    """Register the three packages, then run each one's `__init__` without the skipped lines."""
    packages: list[tuple[ModuleType, ModuleSpec, CodeType]] = []
    for name, skipped in _SKIPPED.items():
        # (importlib.util.find_spec would import the parent package: the whole of it)
        parent = name.rpartition(".")[0]
        search = packages[0][1].submodule_search_locations if packages else importlib.import_module(parent).__path__
        spec = PathFinder.find_spec(name, search)
        if spec is None or spec.loader is None or spec.origin is None or spec.submodule_search_locations is None:
            return  # not the SDK this was written for: the plain import follows
        source = spec.loader.get_source(name)  # type: ignore[attr-defined]
        tree = ast.parse(source, spec.origin)
        tree.body = [node for node in tree.body if _kept(node, skipped)]
        packages.append((importlib.util.module_from_spec(spec), spec, compile(tree, spec.origin, "exec")))
    for module, spec, _code in packages:
        module.__getattr__ = _complete_on_miss(module)  # type: ignore[method-assign]
        sys.modules[spec.name] = module
    try:
        for module, spec, code in packages:
            parent, _, child = spec.name.rpartition(".")
            setattr(sys.modules[parent], child, module)
            exec(code, module.__dict__)  # noqa: S102  (the SDK's own __init__, lines skipped)
    except BaseException:
        for module, spec, _code in packages:  # leave nothing half made: the plain import follows
            sys.modules.pop(spec.name, None)
            parent, _, child = spec.name.rpartition(".")
            if getattr(sys.modules.get(parent), child, None) is module:
                delattr(sys.modules[parent], child)
        raise
    # Completed in the same order, but the parent last: its full `__init__` takes `*` from both subpackages.
    _partial.extend((module, spec) for module, spec, _code in packages[1:] + packages[:1])


if DIALOGS not in sys.modules:
    _set_up_partially()

from microsoft_agents.hosting.dialogs import (  # noqa: E402
    ComponentDialog,
    Dialog,
    DialogContext,
    DialogSet,
    DialogState,
    DialogTurnResult,
    DialogTurnStatus,
    WaterfallDialog,
    WaterfallStepContext,
)
from microsoft_agents.hosting.dialogs.choices import Choice, ListStyle  # noqa: E402
from microsoft_agents.hosting.dialogs.models import DialogInstance  # noqa: E402
from microsoft_agents.hosting.dialogs.prompts import PromptOptions, PromptValidatorContext, TextPrompt  # noqa: E402

__all__ = [
    "Choice",
    "ComponentDialog",
    "Dialog",
    "DialogContext",
    "DialogInstance",
    "DialogSet",
    "DialogState",
    "DialogTurnResult",
    "DialogTurnStatus",
    "ListStyle",
    "PromptOptions",
    "PromptValidatorContext",
    "TextPrompt",
    "WaterfallDialog",
    "WaterfallStepContext",
]
