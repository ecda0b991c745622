"""The PatchGate console: serve with a local Slack stand-in and a page (patchgate console)."""
