"""Private answers: the logic lives in `dialogs.private_replies` (dialogs use it, and dialogs may not
import `bot/`); the bot layer imports it from here or there."""

from __future__ import annotations

from dialogs.private_replies import MESSENGER_KEY, OPEN_A_CHAT, SENT_PRIVATELY, Messenger, send_privately

__all__ = ["MESSENGER_KEY", "OPEN_A_CHAT", "SENT_PRIVATELY", "Messenger", "send_privately"]
