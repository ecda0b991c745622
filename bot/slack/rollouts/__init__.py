"""Rollout status as shown in Slack (the thread itself is rendered by the deliverer)."""
