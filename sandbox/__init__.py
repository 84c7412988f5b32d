"""The built-in Partner Center sandbox: an aiohttp app speaking Partner Center's wire format.

`create_sandbox_app` builds it (persisted in its own `sandbox_*` tables); `start_sandbox` serves it
on a port of the running loop (the embedded default); `run_sandbox` serves it alone (the CLI).
"""

from sandbox.app import RunningSandbox, create_sandbox_app, run_sandbox, start_sandbox
from sandbox.backend import SandboxSettings
from sandbox.clock import Duration, SandboxClock

__all__ = [
    "Duration",
    "RunningSandbox",
    "SandboxClock",
    "SandboxSettings",
    "create_sandbox_app",
    "run_sandbox",
    "start_sandbox",
]
