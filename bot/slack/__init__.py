"""The Slack face: one package per feature (commands, approvals, rollouts, home)."""
