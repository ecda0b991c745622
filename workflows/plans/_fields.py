"""The field types plans are written in, each with one readable error for a bad value:
counts or percentages of hosts, durations, host selectors, Slack IDs by pattern.

Also the strict base model every plan part derives from, and :class:`At`, the error by
which a model-level rule points at the fields below it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)

from workflows.errors import SelectorError
from workflows.plans._selectors import Selector, parse_selector

_AMOUNT_HELP = 'expected a count or a percentage like "25%"'
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Amount:
    """A number of hosts, given as a count (``3``) or a percentage (``"25%"``).

    Exactly one of ``count`` and ``percent`` is set. Percentages use Decimal so that
    rounding is exact (10% of 30 is 3, never 3.0000000004 rounded up to 4).
    """

    count: int | None = None
    percent: Decimal | None = None

    @classmethod
    def of(cls, value: int | str) -> Amount:
        return parse_amount(value)

    def _exact(self, n: int) -> Decimal:
        assert self.percent is not None
        return Decimal(n) * self.percent / _HUNDRED

    def batch_of(self, n: int) -> int:
        """Batch size for a ring of ``n`` hosts: percent rounded up, at least 1, at most n."""
        ceiling = max(n, 1)
        if self.count is not None:
            return max(1, min(self.count, ceiling))
        size = int(self._exact(n).to_integral_value(rounding=ROUND_CEILING))
        return max(1, min(size, ceiling))

    def budget_of(self, n: int) -> int:
        """Failure budget for a ring of ``n`` hosts: percent rounded down; a count as is."""
        if self.count is not None:
            return self.count
        return int(self._exact(n).to_integral_value(rounding=ROUND_FLOOR))

    def sample_of(self, n: int) -> int:
        """Sample out of ``n`` candidates: percent rounded up, at least 1 if n > 0, at most n."""
        if n <= 0:
            return 0
        if self.count is not None:
            return min(self.count, n)
        size = int(self._exact(n).to_integral_value(rounding=ROUND_CEILING))
        return max(1, min(size, n))

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        assert self.percent is not None
        return f"{self.percent.normalize():f}%"

    def to_json(self) -> int | str:
        return self.count if self.count is not None else str(self)


def parse_amount(value: object) -> Amount:
    """``3`` -> count 3; ``"25%"`` -> 25 percent. Raises ValueError with a readable message."""
    if isinstance(value, Amount):
        return value
    if isinstance(value, bool):
        raise ValueError(_AMOUNT_HELP)
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a count must be 0 or more, got {value}")
        return Amount(count=value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return Amount(count=int(text))
        match = _PERCENT.match(text)
        if match:
            try:
                percent = Decimal(match.group(1))
            except InvalidOperation:  # pragma: no cover - the regex admits only decimals
                raise ValueError(_AMOUNT_HELP) from None
            if not 0 < percent <= _HUNDRED:
                raise ValueError(
                    f"a percentage must be more than 0% and at most 100%, got {value!r}"
                )
            return Amount(percent=percent)
    raise ValueError(_AMOUNT_HELP)


AmountField = Annotated[
    Amount,
    PlainValidator(parse_amount),
    PlainSerializer(Amount.to_json),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}),
]


_DURATION_HELP = 'expected a duration like "90s", "30m", "4h", "2d" or "1h30m"'
_DURATION = re.compile(
    r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$", re.IGNORECASE
)


def parse_duration(value: object) -> dt.timedelta:
    """``"90s"``, ``"30m"``, ``"4h"``, ``"2d"``, ``"1h30m"`` or an int of seconds."""
    if isinstance(value, dt.timedelta):
        if value < dt.timedelta(0):
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, bool):
        raise ValueError(_DURATION_HELP)
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return dt.timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text.isdigit():
            return dt.timedelta(seconds=int(text))
        match = _DURATION.match(text)
        if text and match:
            parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
            return dt.timedelta(
                days=parts.get("d", 0),
                hours=parts.get("h", 0),
                minutes=parts.get("m", 0),
                seconds=parts.get("s", 0),
            )
    raise ValueError(_DURATION_HELP)


def format_duration(value: dt.timedelta) -> str:
    """The canonical text of a duration: ``"1h30m"``, ``"2d"``, ``"0s"``."""
    total = int(value.total_seconds())
    if total == 0:
        return "0s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return "".join(
        f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n
    )


Duration = Annotated[
    dt.timedelta,
    PlainValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": ["string", "integer"]}),
]


def _selector(value: object) -> Selector:
    if isinstance(value, Selector):
        return value
    if not isinstance(value, str):
        raise ValueError('expected a host selector string like "group:prod and not tag:pci"')
    try:
        return parse_selector(value)
    except SelectorError as exc:
        raise ValueError(f"bad selector: {exc}") from None


SelectorField = Annotated[
    Selector,
    PlainValidator(_selector),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string"}),
]


_USER_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")


def _slack_id(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: object) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a {what}")
        return value

    return PlainValidator(check, json_schema_input_type=str)


UserGroupId = Annotated[str, _slack_id(_USER_GROUP_ID, "Slack user-group ID (S…)")]
UserId = Annotated[str, _slack_id(_USER_ID, "Slack user ID (U… or W…)")]
ChannelId = Annotated[str, _slack_id(_CHANNEL_ID, "Slack channel ID (C… or G…)")]


class PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def render_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class At(ValueError):
    """A validation error that belongs to fields below the model that raised it.

    Model-level rules (duplicate ring names, ``end`` before ``start``) are checked
    after the fields, so pydantic locates their errors at the model. ``At`` carries
    the field path(s) relative to that model, and the loader puts the line there.
    """

    def __init__(self, *items: tuple[tuple[str | int, ...], str]) -> None:
        self.items = list(items)
        super().__init__("; ".join(f"{render_path(path)}: {msg}" for path, msg in items))
