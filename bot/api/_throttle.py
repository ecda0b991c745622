"""A brake on token guessing: an address whose requests were refused for their token too
often in a short time is answered 429 for a while, before any database work.

Every refused token is an audit row (``token.refused``), so without a brake a stream of
forged tokens would be a stream of writes. Counted per remote address in this process
(each replica counts its own): after ``limit`` refusals within ``window`` seconds, every
request from that address, good token or not, is answered 429 with ``Retry-After`` until
the oldest counted refusal is older than the window. The first 429 of each such spell is
audited once (``api.throttled``); the rest are only counted. The table is bounded: the
address seen longest ago is forgotten first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

REFUSAL_LIMIT = 20  # refused tokens per address ...
REFUSAL_WINDOW = 60.0  # ... within this many seconds
MAX_ADDRESSES = 10_000


class RefusalThrottle:
    def __init__(
        self,
        *,
        limit: int = REFUSAL_LIMIT,
        window: float = REFUSAL_WINDOW,
        max_addresses: int = MAX_ADDRESSES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._monotonic = monotonic
        self._refusals: OrderedDict[str, deque[float]] = OrderedDict()
        self._announced: dict[str, float] = {}  # address -> when its spell was audited
        self.throttled = 0  # requests answered 429 (all addresses, since start)

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it is not held back."""
        seen = self._refusals.get(address)
        if seen is None:
            return None
        now = self._monotonic()
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if not seen:
            del self._refusals[address]
            self._announced.pop(address, None)
            return None
        if len(seen) < self.limit:
            return None
        self.throttled += 1
        return max(1, math.ceil(seen[0] + self.window - now))

    def first_of_spell(self, address: str) -> bool:
        """True once per spell of 429s for ``address`` (that one is audited)."""
        seen = self._refusals.get(address)
        started = seen[-1] if seen else 0.0
        if self._announced.get(address) == started:
            return False
        self._announced[address] = started
        return True

    def refused(self, address: str) -> None:
        """Count one refused token from ``address``."""
        seen = self._refusals.pop(address, None)
        if seen is None:
            seen = deque(maxlen=self.limit)
        seen.append(self._monotonic())
        self._refusals[address] = seen  # most recently seen last
        while len(self._refusals) > self.max_addresses:
            forgotten, _ = self._refusals.popitem(last=False)
            self._announced.pop(forgotten, None)
