"""Adaptive Cards as pure functions: a small view model in, a card dict (schema 1.5) out. No I/O."""
