"""Requests from the faces (CLI, Slack, the scheduler) to the leader, and who may make them.

A room of its own because both the schedule room (one-off runs, freezes) and the faces
write requests, while the engine only reads the rows they leave: keeping them out of the
engine keeps the rooms free of cycles (the engine asks the schedule about windows).
"""

from workflows.requests._commands import control_rollout, create_rollout, refuse, start_rollout

__all__ = ["control_rollout", "create_rollout", "refuse", "start_rollout"]
