"""The host selector grammar: which inventory hosts a ring takes.

Grammar (keywords and term kinds are case-insensitive, names are not)::

    selector := or_expr
    or_expr  := and_expr ("or" and_expr)*
    and_expr := not_expr ("and" not_expr)*
    not_expr := "not" not_expr | atom
    atom     := "(" or_expr ")" | "all" | KIND ":" NAME
    KIND     := group | tag | host | env
    NAME     := [A-Za-z0-9_.*?\\[\\]-]+      (fnmatch globs allowed: web-*, db-0[1-3])

Precedence: ``not`` binds tighter than ``and``, which binds tighter than ``or``.
:func:`parse_selector` returns an immutable AST; ``str()`` of it is a canonical form
that parses back to an equal selector. Errors are :class:`SelectorError` naming the
column (1-based) and what was expected there.

Hand-written recursive descent: the grammar is a dozen lines and a parser library
would cost more than it saves (and would word the error messages for us).
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from workflows.errors import SelectorError
from workflows.ports import InventoryHost

__all__ = [
    "MAX_SELECTOR_DEPTH",
    "All",
    "And",
    "Not",
    "Or",
    "Selector",
    "Term",
    "TermKind",
    "parse_selector",
]

TermKind = Literal["group", "tag", "host", "env"]
_KINDS: tuple[TermKind, ...] = ("group", "tag", "host", "env")
_NAME = re.compile(r"[A-Za-z0-9_.*?\[\]-]+")
_GLOB_CHARS = frozenset("*?[")


def _is_glob(name: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in name)


class Selector(abc.ABC):
    """Base of the selector AST. Subclasses are frozen dataclasses (compared by value)."""

    __slots__ = ()

    @abc.abstractmethod
    def matches(self, host: InventoryHost) -> bool: ...

    # Binding strength, used by __str__ to add only the parentheses needed.
    precedence: int = 4


@dataclass(frozen=True, slots=True)
class All(Selector):
    """Every host."""

    def matches(self, host: InventoryHost) -> bool:
        return True

    def __str__(self) -> str:
        return "all"


@dataclass(frozen=True, slots=True)
class Term(Selector):
    """``kind:name``; ``name`` may be an fnmatch glob."""

    kind: TermKind
    name: str

    def matches(self, host: InventoryHost) -> bool:
        name = self.name
        if self.kind == "host":
            return fnmatchcase(host.name, name) if _is_glob(name) else host.name == name
        if self.kind == "env":
            env = host.environment
            return env is not None and (fnmatchcase(env, name) if _is_glob(name) else env == name)
        values = host.groups if self.kind == "group" else host.tags
        if not _is_glob(name):
            return name in values
        return any(fnmatchcase(value, name) for value in values)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class Not(Selector):
    operand: Selector

    precedence = 3

    def matches(self, host: InventoryHost) -> bool:
        return not self.operand.matches(host)

    def __str__(self) -> str:
        return f"not {_wrap(self.operand, self.precedence)}"


@dataclass(frozen=True, slots=True)
class And(Selector):
    """Two or more operands, flattened (``a and (b and c)`` is ``And(a, b, c)``)."""

    operands: tuple[Selector, ...]

    precedence = 2

    def matches(self, host: InventoryHost) -> bool:
        return all(op.matches(host) for op in self.operands)

    def __str__(self) -> str:
        return " and ".join(_wrap(op, self.precedence + 1) for op in self.operands)


@dataclass(frozen=True, slots=True)
class Or(Selector):
    """Two or more operands, flattened."""

    operands: tuple[Selector, ...]

    precedence = 1

    def matches(self, host: InventoryHost) -> bool:
        return any(op.matches(host) for op in self.operands)

    def __str__(self) -> str:
        return " or ".join(_wrap(op, self.precedence + 1) for op in self.operands)


def _wrap(node: Selector, minimum: int) -> str:
    text = str(node)
    return text if node.precedence >= minimum else f"({text})"


def _and(operands: list[Selector]) -> Selector:
    flat: list[Selector] = []
    for op in operands:
        flat.extend(op.operands if isinstance(op, And) else (op,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _or(operands: list[Selector]) -> Selector:
    flat: list[Selector] = []
    for op in operands:
        flat.extend(op.operands if isinstance(op, Or) else (op,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


# --- tokens ------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s+|(?P<paren>[()])|(?P<word>[A-Za-z0-9_.*?\[\]:-]+)")


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    column: int  # 1-based

    @property
    def keyword(self) -> str:
        return self.text.lower()


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SelectorError(
                f'unexpected character "{text[pos]}" at column {pos + 1}', position=pos + 1
            )
        if match.group("paren") or match.group("word"):
            tokens.append(_Token(match.group(0), pos + 1))
        pos = match.end()
    return tokens


MAX_SELECTOR_DEPTH = 64
"""Parentheses and ``not`` nested deeper than this are refused (the parser recurses)."""

_EXPECT_TERM = 'a term (group:NAME, tag:NAME, host:NAME, env:NAME, all), "not" or "("'


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    def _deeper(self, token: _Token) -> None:
        """One more level of ``(`` or ``not``; refused past :data:`MAX_SELECTOR_DEPTH`."""
        self.depth += 1
        if self.depth > MAX_SELECTOR_DEPTH:
            raise SelectorError(
                f'"{token.text}" at column {token.column} nests the selector deeper than '
                f"{MAX_SELECTOR_DEPTH} levels",
                position=token.column,
            )

    # helpers
    def _peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _end_column(self) -> int:
        return len(self.text.rstrip()) + 1

    def _fail(self, token: _Token | None, expected: str) -> SelectorError:
        if token is None:
            column = self._end_column()
            return SelectorError(
                f"selector ends too early at column {column}: expected {expected}",
                position=column,
            )
        return SelectorError(
            f'unexpected "{token.text}" at column {token.column}: expected {expected}',
            position=token.column,
        )

    # grammar
    def parse(self) -> Selector:
        if not self.tokens:
            raise SelectorError(f"empty selector: expected {_EXPECT_TERM}", position=1)
        node = self._or()
        token = self._peek()
        if token is not None:
            if token.text == ")":
                raise SelectorError(
                    f'unexpected ")" at column {token.column}: no "(" to close',
                    position=token.column,
                )
            raise self._fail(token, '"and", "or" or the end of the selector')
        return node

    def _or(self) -> Selector:
        operands = [self._and()]
        while (token := self._peek()) is not None and token.keyword == "or":
            self.index += 1
            operands.append(self._and())
        return _or(operands)

    def _and(self) -> Selector:
        operands = [self._not()]
        while (token := self._peek()) is not None and token.keyword == "and":
            self.index += 1
            operands.append(self._not())
        return _and(operands)

    def _not(self) -> Selector:
        token = self._peek()
        if token is not None and token.keyword == "not":
            self.index += 1
            self._deeper(token)
            node = Not(self._not())
            self.depth -= 1
            return node
        return self._atom()

    def _atom(self) -> Selector:
        token = self._peek()
        if token is None:
            raise self._fail(None, _EXPECT_TERM)
        if token.text == "(":
            self.index += 1
            self._deeper(token)
            node = self._or()
            self.depth -= 1
            closing = self._peek()
            if closing is None or closing.text != ")":
                if closing is None:
                    raise SelectorError(
                        f'selector ends too early at column {self._end_column()}: expected ")" '
                        f'to close the "(" at column {token.column}',
                        position=self._end_column(),
                    )
                raise self._fail(
                    closing, f'"and", "or" or ")" to close the "(" at column {token.column}'
                )
            self.index += 1
            return node
        if token.text == ")":
            raise self._fail(token, _EXPECT_TERM)
        self.index += 1
        if token.keyword == "all":
            return All()
        if token.keyword in ("and", "or"):
            raise self._fail(token, _EXPECT_TERM)
        kind, colon, name = token.text.partition(":")
        if not colon:
            raise SelectorError(
                f'unexpected "{token.text}" at column {token.column}: expected {_EXPECT_TERM}',
                position=token.column,
            )
        if kind.lower() not in _KINDS:
            raise SelectorError(
                f'unknown term kind "{kind}" at column {token.column}: '
                "expected group:, tag:, host: or env:",
                position=token.column,
            )
        name_column = token.column + len(kind) + 1
        if not name:
            raise SelectorError(
                f"missing name after {kind}: at column {name_column}", position=name_column
            )
        if not _NAME.fullmatch(name):
            bad = next(i for i, ch in enumerate(name) if not _NAME.fullmatch(ch))
            raise SelectorError(
                f'unexpected character "{name[bad]}" in name at column {name_column + bad}: '
                "names are letters, digits and _ . - * ? [ ]",
                position=name_column + bad,
            )
        return Term(kind.lower(), name)  # type: ignore[arg-type]


def parse_selector(text: str) -> Selector:
    """Parse a selector such as ``group:prod and not (tag:pci or host:db-*)``."""
    return _Parser(text).parse()
