"""What a running sandbox app holds, under one typed `web.AppKey` (built in the app factory)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from sandbox.backend import SandboxBackend
from sandbox.faults import FaultInjector, Throttle


@dataclass
class SandboxRuntime:
    backend: SandboxBackend
    faults: FaultInjector
    throttle: Throttle
    accepted_token: str
    persist_clock: bool


RUNTIME = web.AppKey("partner_center_sandbox", SandboxRuntime)
