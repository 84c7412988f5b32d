"""Start-up loads only what a turn needs (bench/startup.py measures how long it takes): Alembic, MSAL, the
Partner Center sandbox and the SDK's Recognizers-Text are loaded when they are used, not by `import app`; and
the SDK's dialog packages, set up without their prompts, look as they always do once more is asked of them."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What `import app` must not load, and why it is not needed before it is used.
NOT_AT_START_UP = {
    "alembic": "a database at the head is recognised from alembic_version (services/migrate.py)",
    "msal": "no token is asked for in the local mode; an authenticated bot loads it when it builds connections",
    "requests": "only MSAL uses it",
    "recognizers_text": "the SDK's date, number, confirm and choice prompts, which no task uses (dialogs/sdk.py)",
    "recognizers_date_time": "the SDK's DateTimePrompt",
    "recognizers_number": "the SDK's choice recognizer and NumberPrompt",
    "sandbox": "only the embedded default starts it, when the app opens Partner Center",
    "phonenumbers": "only a tenant form checks a phone number (services/phones.py)",
    "openpyxl": "the exports write their XLSX themselves (services/billing/xlsx.py); only tests read it back",
}


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def test_importing_the_app_loads_nothing_a_turn_does_not_need():
    loaded = set(json.loads(_python("import json, sys, app; print(json.dumps(sorted(sys.modules)))")))
    assert {name for name in NOT_AT_START_UP if name in loaded} == set()


# The three packages' namespaces: each name with what it is bound to (a module, or an object's module and name).
# With NAMES set, every one of those names is asked for first (the first missing one completes the packages).
NAMESPACES = """
import json, sys, types

def describe(value):
    if isinstance(value, types.ModuleType):
        return "module " + value.__name__
    return f"{getattr(value, '__module__', None)}.{getattr(value, '__qualname__', type(value).__name__)}"

asked = {name: {key: describe(getattr(sys.modules[name], key)) for key in keys} for name, keys in NAMES.items()}
print(json.dumps({"asked": asked, "namespaces": {
    name: {key: describe(value) for key, value in vars(sys.modules[name]).items()
           if key not in {"__builtins__", "__spec__", "__loader__", "__cached__"}}
    for name in ["microsoft_agents.hosting.dialogs", "microsoft_agents.hosting.dialogs.choices",
                 "microsoft_agents.hosting.dialogs.prompts"]
}}))
"""


@functools.cache
def _plain_namespaces() -> dict[str, dict[str, str]]:
    """The three namespaces after a plain import of the SDK's dialogs (the same for every case below:
    one interpreter per test process asks)."""
    return dict(json.loads(_python("import microsoft_agents.hosting.dialogs\nNAMES = {}\n" + NAMESPACES))["namespaces"])


@pytest.mark.parametrize(
    "first_use",
    [
        "",
        "from microsoft_agents.hosting.dialogs import DateTimePrompt",
        "from microsoft_agents.hosting.dialogs.choices import ChoiceRecognizers",
        "import microsoft_agents.hosting.dialogs.prompts.number_prompt",
        "from microsoft_agents.hosting.dialogs import *",
    ],
    ids=["nothing-more", "a-prompt-by-name", "the-choice-recognizer", "a-prompt-module", "star"],
)
def test_the_sdk_dialogs_look_as_always_once_more_is_asked_of_them(first_use):
    """Every name a plain import of the SDK's dialogs binds is there, the same object, and then the three
    namespaces are the plain import's."""
    plain = _plain_namespaces()
    names = {package: sorted(namespace) for package, namespace in plain.items()}
    ours = json.loads(_python(f"import dialogs.sdk\n{first_use}\nNAMES = {names!r}\n" + NAMESPACES))
    assert ours["asked"] == plain
    assert ours["namespaces"] == plain


def test_the_sdk_dialogs_we_use_come_without_the_recognizers():
    code = (
        "import sys\nimport dialogs.sdk\nfrom dialogs.sdk import TextPrompt, PromptOptions, Choice, ComponentDialog\n"
        "print(sorted(name for name in sys.modules if name.startswith('recognizers')))"
    )
    assert _python(code).strip() == "[]"


def test_the_local_modes_token_provider_is_msals_made_on_first_use():
    from microsoft_agents.authentication.msal import MsalAuth

    from bot.auth import DeferredMsalAuth, build_connections
    from services.settings import Settings

    provider = build_connections(Settings(_env_file=None)).get_default_connection()  # type: ignore[call-arg]
    assert isinstance(provider, DeferredMsalAuth)
    assert provider.configuration.ANONYMOUS_ALLOWED
    assert isinstance(provider._real(), MsalAuth)
    assert provider._msal_configuration is provider.configuration  # every other member is MsalAuth's own
    authenticated = Settings(  # type: ignore[call-arg]
        _env_file=None, microsoft_app_id="app", microsoft_app_password="secret", microsoft_app_tenant_id="tenant"
    )
    assert isinstance(build_connections(authenticated).get_default_connection(), MsalAuth)


def test_cspbot_help_loads_neither_the_services_nor_the_database():
    code = (
        "import contextlib, io, json, sys\nfrom cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['--help']) == 0\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = set(json.loads(_python(code)))
    heavy = {"sqlalchemy", "pydantic", "aiohttp", "asyncio", "services.settings", "services.container", "cryptography"}
    assert heavy & loaded == set()
