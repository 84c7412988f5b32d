"""`cspbot`: the reseller operator's command line (organisations, members, alerts, app package)."""
