"""The transactional outbox: messages and tickets written with the change that causes them.

Producers call :func:`enqueue` inside their own transaction, so a row exists if and only
if the change committed. The leader's :class:`OutboxWorker` delivers rows through
deliverers that adapters register per topic (``integrations/``): the domain only knows the
:class:`Deliverer` protocol. ``_rows`` adds and operates on rows, ``_lease`` holds the
claiming, ordering and retry rules, ``_worker`` the delivery loop.
"""

from workflows.outbox._lease import DeliveryItem, backoff_delay
from workflows.outbox._rows import counts, enqueue, list_items, retry, waiting_on
from workflows.outbox._worker import DeadLetterListener, Deliverer, OutboxWorker

__all__ = [
    "DeadLetterListener",
    "Deliverer",
    "DeliveryItem",
    "OutboxWorker",
    "backoff_delay",
    "counts",
    "enqueue",
    "list_items",
    "retry",
    "waiting_on",
]
