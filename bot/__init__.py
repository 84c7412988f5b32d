"""The Teams-facing layer: activity handler, adapter and auth, caller identity, bot storage,
proactive messages, turn errors."""
