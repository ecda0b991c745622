"""Ansible host ranges: ``web[01:20].example.com``, ``db-[a:c]``, ``node[1:10:2]``.

Expansion follows Ansible's ``expand_hostname_range``: the first ``[begin:end(:step)]``
is expanded, then the rest recursively; a leading zero fixes the width (``[01:20]``), and
both bounds must then have the same length; letters expand over ``a..zA..Z``.
"""

from __future__ import annotations

import re
import string

from integrations.inventory.hostvars import HostProblem

_HOST_PORT = re.compile(r"^(?P<host>[^:\[\]]+(?:\[[^\]]*\][^:\[\]]*)*):(?P<port>\d+)$")


def split_port(pattern: str) -> tuple[str, int | None]:
    """``host:2222`` -> (``host``, 2222); IPv6 and bare names keep no port."""
    match = _HOST_PORT.match(pattern)
    if match is None:
        return pattern, None
    return match.group("host"), int(match.group("port"))


def expand(pattern: str) -> list[str]:
    """Every host name a pattern stands for (a name without a range stands for itself)."""
    if "[" not in pattern:
        return [pattern]
    head, _, rest = pattern.partition("[")
    body, closed, tail = rest.partition("]")
    if not closed:
        raise HostProblem(f"host range {pattern!r} has no closing ]")
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise HostProblem(f"host range {pattern!r} must be [begin:end] or [begin:end:step]")
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise HostProblem(f"host range {pattern!r} must give an end value")
    if not step_text.isdigit() or int(step_text) < 1:
        raise HostProblem(f"host range {pattern!r}: the step must be a positive number")
    step = int(step_text)
    width = 0
    if begin[0] == "0" and len(begin) > 1:
        if len(begin) != len(end):
            raise HostProblem(
                f"host range {pattern!r}: zero-padded bounds must have the same length"
            )
        width = len(begin)
    items: list[str]
    letters = string.ascii_letters
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        first, last = letters.index(begin), letters.index(end)
        if first > last:
            raise HostProblem(f"host range {pattern!r}: begin must not come after end")
        items = list(letters[first : last + 1 : step])
    elif begin.isdigit() and end.isdigit():
        items = [str(i).zfill(width) for i in range(int(begin), int(end) + 1, step)]
    else:
        raise HostProblem(f"host range {pattern!r}: bounds must be two numbers or two letters")
    names: list[str] = []
    for item in items:
        names.extend(expand(f"{head}{item}{tail}"))
    return names
