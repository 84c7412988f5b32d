"""Reading the mail the tests find: the plain-text part of a message (plain only, or with HTML)."""

from __future__ import annotations

from email.message import EmailMessage


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the message has no plain-text part"
    return str(part.get_content())
