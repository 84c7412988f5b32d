"""Start-up wiring: what app.py and the CLI build before the services run (the Partner Center
connection, real or the built-in sandbox; the catalog prepared once per deployment)."""
