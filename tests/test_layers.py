"""The layer rules of DESIGN.md, checked on every module's imports (including imports inside functions
and under TYPE_CHECKING): the Agents SDK only in app.py, bot/ and dialogs/; dialogs import only cards
and services (never bot/); services import only services and no Teams types; cards are pure (no SDK,
no bot or dialogs; services only for their view models); the Partner Center layer imports nothing
above it; the sandbox is a program of its own beside services/, wired in by startup/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {
    "app",
    "bot",
    "dialogs",
    "cards",
    "services",
    "sandbox",
    "startup",
    "cli",
    "manifest",
    "migrations",
    "tests",
    "bench",
}
SDK = "microsoft_agents"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _modules(folder: str, root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _violations(folder: str, allowed_ours: set[str], *, sdk: bool, root: Path = ROOT) -> list[str]:
    found = []
    for path in _modules(folder, root):
        relative = path.relative_to(root).as_posix()
        for name in _imports(path):
            top = name.split(".")[0]
            if top == SDK and not sdk:
                found.append(f"{relative}: {name}")
            elif top in OURS and top not in allowed_ours:
                found.append(f"{relative}: {name}")
    return found


@pytest.mark.parametrize(
    ("folder", "allowed", "sdk"),
    [
        ("bot", {"bot", "dialogs", "cards", "services"}, True),
        ("dialogs", {"dialogs", "cards", "services"}, True),
        ("cards", {"cards", "services"}, False),
        ("services", {"services"}, False),
        ("cli", {"cli", "services", "startup", "sandbox", "manifest"}, False),
        ("startup", {"startup", "services", "sandbox"}, False),
        ("manifest", {"manifest"}, False),
    ],
)
def test_each_layer_imports_only_what_design_allows(folder, allowed, sdk):
    assert _violations(folder, allowed, sdk=sdk) == []


# The foundation's plumbing the client and sandbox stand on; no domain service (tenants, ordering, ...).
# services.i18n: Microsoft's refusals are told to the person in their language (the message catalogs).
PARTNER_CENTER_MAY_USE = {
    "services.db",
    "services.errors",
    "services.i18n",
    "services.logging_context",
    "services.remote_waits",
    "services.settings",
}


def test_the_partner_center_layer_imports_nothing_above_it():
    found = []
    for path in _modules("services/partner_center"):
        for name in _imports(path):
            if name.split(".")[0] in OURS and not (
                name.startswith("services.partner_center") or name in PARTNER_CENTER_MAY_USE
            ):
                found.append(f"{path.relative_to(ROOT).as_posix()}: {name}")
    assert found == []


def test_the_sandbox_is_a_separate_program_on_the_plumbing_only():
    """The simulator speaks Partner Center's wire format; it uses the database plumbing, never a domain
    service, and nothing in services/ knows it exists (start-up wiring in startup/ chooses it)."""
    found = [
        f"{path.relative_to(ROOT).as_posix()}: {name}"
        for path in _modules("sandbox")
        for name in _imports(path)
        if name.split(".")[0] in OURS and not (name.startswith("sandbox") or name in PARTNER_CENTER_MAY_USE)
    ]
    assert found == []


def test_cards_use_services_only_for_view_models():
    """A card builder may name a service's view model (a dataclass), never a service class, session or client."""
    found = []
    for path in _modules("cards"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("services"):
                for alias in node.names:
                    if alias.name.endswith(("Service", "Client", "Session", "Book")) or alias.name == "Services":
                        found.append(f"{path.relative_to(ROOT).as_posix()}: {node.module}.{alias.name}")
    assert found == []


def test_the_checker_sees_a_violation(tmp_path):
    """The rule would fail on a dialog importing bot/ inside a function, or a service importing the SDK."""
    (tmp_path / "dialogs").mkdir()
    (tmp_path / "dialogs" / "x.py").write_text("def f():\n    from bot.proactive import ProactiveMessenger\n")
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "y.py").write_text("import microsoft_agents.activity\n")
    assert _violations("dialogs", {"dialogs", "cards", "services"}, sdk=True, root=tmp_path) == [
        "dialogs/x.py: bot.proactive"
    ]
    assert _violations("services", {"services"}, sdk=False, root=tmp_path) == [
        "services/y.py: microsoft_agents.activity"
    ]
