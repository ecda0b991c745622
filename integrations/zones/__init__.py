"""Zone workers: host work for hosts in network zones the leader cannot reach directly.

The leader keeps the only database connection and the only writer of rollout state. A
host whose inventory names a zone (``patchgate_zone``) has its host-side steps sent over
Celery to that zone's queue (``patchgate.zone.<name>``); ``patchgate worker --zone NAME``
runs them with the zone's own SSH settings and sends the typed result back as JSON.

    wire.py        the JSON form of hosts, port values and executor errors
    celeryapp.py   the Celery app both sides build (JSON only, late acks)
    worker.py      the worker side: the task, its executor, the status command
    monitor.py     the leader's view of the zones (workers, heartbeats, queue depth)
    client.py      the leader side of one call: send, watch, re-send what was lost
    router.py      the Executor/HealthChecker that routes each host (no Celery import
                   until a host has a zone)
    knownhosts.py  host keys a worker learns at first contact, in a file of its own
"""
