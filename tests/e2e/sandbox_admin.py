"""Drive the built-in Partner Center sandbox of a bot under test (its clock, its simulated customers):
what Microsoft or the customer's own admin would do meanwhile. The admin endpoint accepts the
client's own token."""

from __future__ import annotations

from typing import Any

import aiohttp

from services.container import Services


async def sandbox_admin(services: Services, method: str, path: str, body: Any = None) -> Any:
    client = services.partner_center
    token = await client._tokens.get_token("app")
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, f"{client._base_url}/_sandbox{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        data = await response.json() if response.content_type == "application/json" else await response.text()
        assert response.status < 400, f"sandbox admin {method} {path}: {response.status} {data}"
        return data
