"""Domain logic and persistence. Nothing Teams- or HTTP-framework-specific lives here."""
