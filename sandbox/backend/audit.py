"""Audit records: the partner's activity log, filtered and paged as Microsoft lists it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

from sandbox.backend.core import Resource, parse_filter
from sandbox.clock import parse_instant
from sandbox.errors import invalid_input
from sandbox.store import Unit


class AuditLog(Resource):
    async def records(
        self,
        tx: Unit,
        *,
        start: str | None,
        end: str | None,
        filter_text: str | None,
        size: int | None,
        token: str | None,
    ) -> dict[str, Any]:
        now = self.clock.now()
        try:
            begin = parse_instant(start) if start else now - timedelta(days=30)
            finish = parse_instant(end) if end else now + timedelta(seconds=1)
        except ValueError:
            raise invalid_input("startDate and endDate are dates (yyyy-mm-dd) or UTC date-times") from None
        if end and len(end.strip()) <= 10:
            finish += timedelta(days=1)  # a date-only end date includes that whole day
        if begin < now - timedelta(days=90):
            raise invalid_input("startDate must be within the last 90 days")
        records = await tx.audit_between(begin, finish)
        if filter_text:
            field_name, value, _operator = parse_filter(filter_text)
            if field_name == "customerid":
                records = [r for r in records if (r.get("customerId") or "").lower() == value]
            elif field_name == "resourcetype":
                records = [r for r in records if r["resourceType"].replace("_", "").lower() == value.replace("_", "")]
            elif field_name == "companyname":
                records = [r for r in records if value in (r.get("customerName") or "").lower()]
            else:
                raise invalid_input("filter Field must be CustomerId, ResourceType or CompanyName")
        query = "&".join(
            part
            for part in (
                f"startDate={quote(start, safe='')}" if start else "",
                f"endDate={quote(end, safe='')}" if end else "",
                f"filter={quote(filter_text, safe='')}" if filter_text else "",
            )
            if part
        )
        return self.core.page(records, "/auditrecords" + (f"?{query}" if query else ""), "audit", size, token)
