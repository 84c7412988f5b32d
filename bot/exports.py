"""`GET /exports/{token}`: the download behind an export link — single use, 15 minutes, one
organisation's bills (or its monthly licence overview) only, every download audited (the token is the
only credential; it is stored as its hash and never logged)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from services.billing.export import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, export_name, to_csv, to_xlsx
from services.billing.reports import month_label
from services.billing.service import OVERVIEW_FORMAT, BillingService
from services.errors import Conflict, DomainError, NotFound, PermissionDenied
from services.i18n import N_, _
from services.warnings.overview import overview_name, overview_xlsx

log = logging.getLogger(__name__)

_PAGE = N_("<!doctype html><meta charset=utf-8><title>Export</title><p>{message}</p>")


# An organisation's stored licence overview of a month (`WarningService.overview`).
OverviewSource = Callable[[int, str], Awaitable[Mapping[str, Any]]]


def export_handler(
    billing: Callable[[], BillingService], overview: Callable[[], OverviewSource] | None = None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle_export(request: web.Request) -> web.StreamResponse:
        service = billing()
        try:
            grant = await service.redeem_export_link(request.match_info["token"])
            if grant.file_format == OVERVIEW_FORMAT:
                if overview is None:
                    raise NotFound(_("This download link is not valid."))
                month = month_label(grant.first)
                body = overview_xlsx(await overview()(grant.organisation_id, month))
                return _download(body, XLSX_MEDIA_TYPE, overview_name(month))
            reports = await service.reports_for_grant(grant)
        except (NotFound, Conflict, PermissionDenied) as error:
            status = 404 if isinstance(error, NotFound) else 410
            log.info("export link refused (%s)", error.code)
            return web.Response(status=status, text=_(_PAGE).format(message=error.message), content_type="text/html")
        except DomainError as error:
            return web.Response(status=400, text=_(_PAGE).format(message=error.message), content_type="text/html")
        name = export_name(month_label(grant.first), month_label(grant.last), grant.file_format)
        if grant.file_format == "csv":
            body, media_type = to_csv(reports), CSV_MEDIA_TYPE
        else:
            body, media_type = to_xlsx(reports), XLSX_MEDIA_TYPE
        return _download(body, media_type, name)

    return handle_export


def _download(body: bytes, media_type: str, name: str) -> web.Response:
    return web.Response(
        body=body,
        content_type=media_type,
        headers={
            "Content-Disposition": _('attachment; filename="{name}"', name=name),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )
