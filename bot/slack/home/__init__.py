"""App Home: open rollouts, gates waiting for the viewer, recent rollouts, coverage and
coverage gaps (hosts unreachable or with stale facts)."""
