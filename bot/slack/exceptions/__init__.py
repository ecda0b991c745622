"""Time-boxed exceptions from Slack: ``/patch exception HOST`` opens a form (a modal)."""
