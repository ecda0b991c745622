"""The host selector grammar: parsing, precedence, matching, located errors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows.errors import SelectorError
from workflows.plans import All, And, Not, Or, Term, parse_selector
from workflows.ports import InventoryHost


def host(
    name: str, *, groups: tuple[str, ...] = (), tags: tuple[str, ...] = (), env: str | None = None
) -> InventoryHost:
    return InventoryHost(name=name, groups=frozenset(groups), tags=frozenset(tags), environment=env)


def test_terms_parse_to_their_kind_and_name() -> None:
    assert parse_selector("group:prod") == Term("group", "prod")
    assert parse_selector("tag:pci") == Term("tag", "pci")
    assert parse_selector("host:web-*") == Term("host", "web-*")
    assert parse_selector("env:production") == Term("env", "production")
    assert parse_selector("all") == All()


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    parsed = parse_selector("group:a or not group:b and group:c")
    assert parsed == Or((Term("group", "a"), And((Not(Term("group", "b")), Term("group", "c")))))


def test_parentheses_override_precedence() -> None:
    parsed = parse_selector("(group:a or group:b) and not tag:pci")
    assert parsed == And((Or((Term("group", "a"), Term("group", "b"))), Not(Term("tag", "pci"))))


def test_keywords_and_kinds_are_case_insensitive_but_names_are_not() -> None:
    assert parse_selector("GROUP:Prod AND Not TAG:pci") == parse_selector(
        "group:Prod and not tag:pci"
    )
    assert parse_selector("group:Prod") != parse_selector("group:prod")


def test_canonical_form_drops_redundant_parentheses() -> None:
    assert (
        str(parse_selector("((group:a) and (group:b and group:c))"))
        == "group:a and group:b and group:c"
    )
    assert str(parse_selector("(group:a or group:b) and tag:x")) == "(group:a or group:b) and tag:x"
    assert str(parse_selector("not (group:a or tag:b)")) == "not (group:a or tag:b)"


def test_group_tag_and_env_terms_match_the_host_attributes() -> None:
    web = host("web-01", groups=("web", "prod"), tags=("pci",), env="production")
    assert parse_selector("group:prod and tag:pci and env:production").matches(web)
    assert not parse_selector("group:dev").matches(web)
    assert not parse_selector("env:staging").matches(web)
    assert not parse_selector("env:production").matches(host("x"))  # no environment at all


def test_globs_match_host_names_and_groups() -> None:
    assert parse_selector("host:web-*").matches(host("web-07"))
    assert not parse_selector("host:web-*").matches(host("db-01"))
    assert parse_selector("host:db-0[1-3]").matches(host("db-02"))
    assert not parse_selector("host:db-0[1-3]").matches(host("db-04"))
    assert parse_selector("group:pro?").matches(host("h", groups=("prod",)))


def test_not_excludes_what_its_operand_matches() -> None:
    selector = parse_selector("group:prod and not tag:pci")
    assert selector.matches(host("a", groups=("prod",)))
    assert not selector.matches(host("b", groups=("prod",), tags=("pci",)))


def test_unbalanced_closing_parenthesis_is_located() -> None:
    with pytest.raises(SelectorError, match=r'^unexpected "\)" at column 14: no "\(" to close'):
        parse_selector("(group:abcde))")


def test_stray_closing_parenthesis_names_its_column() -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector("group:prod  )")
    assert str(caught.value).startswith('unexpected ")" at column 13')
    assert caught.value.position == 13


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty selector"),
        ("group:a and", "selector ends too early at column 12"),
        ("(group:a", 'expected ")" to close the "(" at column 1'),
        ("group:a group:b", 'unexpected "group:b" at column 9'),
        ("color:red", 'unknown term kind "color" at column 1'),
        ("group:", "missing name after group: at column 7"),
        ("group:a$", 'unexpected character "$" at column 8'),
        ("host:a:b", 'unexpected character ":" in name at column 7'),
        ("group:a & tag:b", 'unexpected character "&" at column 9'),
        ("prod", 'unexpected "prod" at column 1: expected a term'),
        ("and group:a", 'unexpected "and" at column 1'),
    ],
)
def test_bad_selectors_say_where_and_what_was_expected(text: str, expected: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(text)
    assert expected in str(caught.value)


# --- properties ---------------------------------------------------------------------------

_names = st.from_regex(r"[A-Za-z0-9_.*?-]{1,8}", fullmatch=True)
_kinds = st.sampled_from(["group", "tag", "host", "env", "GROUP", "Tag"])
_terms = st.one_of(
    st.builds(lambda k, n: f"{k}:{n}", _kinds, _names),
    st.sampled_from(["all", "ALL"]),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a: f"not {a}", children),
        st.builds(
            lambda a, b, op: f"{a} {op} {b}",
            children,
            children,
            st.sampled_from(["and", "or", "AND", "Or"]),
        ),
        st.builds(lambda a, sp: f"({sp}{a}{sp})", children, st.sampled_from(["", " ", "  "])),
    )


selector_texts = st.recursive(_terms, _combine, max_leaves=12)


@given(selector_texts)
def test_canonical_form_parses_back_to_an_equal_selector(text: str) -> None:
    parsed = parse_selector(text)
    assert parse_selector(str(parsed)) == parsed
    assert str(parse_selector(str(parsed))) == str(parsed)


@given(st.text(alphabet=st.sampled_from(list("()abcdegnoprtl:*? -[]$&|!\t")), max_size=40))
def test_garbage_raises_only_selector_errors(text: str) -> None:
    try:
        parsed = parse_selector(text)
    except SelectorError as exc:
        assert exc.position >= 1
    else:
        assert parse_selector(str(parsed)) == parsed


@given(st.text(max_size=30))
def test_any_unicode_raises_only_selector_errors(text: str) -> None:
    with contextlib.suppress(SelectorError):
        parse_selector(text)
