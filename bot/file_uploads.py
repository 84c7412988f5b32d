"""Putting a file into the OneDrive upload session Teams' file consent created (`fileConsent/invoke`):
the transport half of billing's exports, kept out of `dialogs/` (which receive it as
`dialogs.billing.FileUploads`)."""

from __future__ import annotations

import logging

import aiohttp

from services.errors import InvalidInput
from services.i18n import _
from services.outbound_hosts import HostAllowList, HostNotAllowed

log = logging.getLogger(__name__)


class OneDriveUploads:
    """Uploads to the URLs Teams names, only to the allowed hosts (FILE_UPLOAD_HOSTS: https to
    OneDrive for Business, or loopback in the local mode)."""

    def __init__(self, hosts: HostAllowList) -> None:
        self._hosts = hosts

    def check(self, url: str) -> None:
        """Refuse an upload address we may not send to, before anything is used up."""
        try:
            self._hosts.check(url)
        except HostNotAllowed:
            raise InvalidInput(
                _("Teams gave an upload address I cannot use, so no file was sent. Try the export again.")
            ) from None

    async def put(self, url: str, content: bytes, media_type: str) -> None:
        """PUT the whole file in one range to the upload session (a URL `check` accepted)."""
        self.check(url)
        headers = {
            "Content-Type": media_type,
            "Content-Range": f"bytes 0-{len(content) - 1}/{len(content)}",
        }
        async with aiohttp.ClientSession() as session, session.put(url, data=content, headers=headers) as response:
            if response.status >= 400:
                log.warning("file upload refused with HTTP %s", response.status)
                raise InvalidInput(_("Uploading the file did not work. Try the export again, or ask for a link."))
