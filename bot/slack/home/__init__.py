"""App Home: open rollouts, gates waiting for the viewer, recent rollouts, coverage."""
