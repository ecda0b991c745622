"""Hypothesis strategies for hostile input: structured documents with hostile leaves,
fixture lines spliced and cut, and raw bytes. Each ``*_inputs`` strategy gives the bytes
one target of ``targets.py`` reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.fuzz.targets import FIXTURES, fixture_lines

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Strings people (or attackers) put where a name is expected.
HOSTILE = (
    "; rm -rf /", "$(reboot)", "`id`", "a|b", "a&&b", "a\nb", "a\rb", "x\n", "\n", "'", '"',
    "\\", "--foo", "-o", "-oProxyCommand=touch /tmp/pwned", "*", "?", "[", "]", "{{ x }}",
    "{%", "%s", "${IFS}", "a b", "\t", "\x00", "\x1b[31m", "é", "ü", "名前", "\u202e",
    "\u200b", "\ufeff", "\u2028", "😀", "", " ", "0", "-1", "1e309", "nan", "null", "~",
    "true", "yes", "no", "[]", "{}", "<x>", "&amp;", "a" * 300, "::", "1:", ":1", "1.0-",
    "a:b:c", "..", "../etc/passwd", "/", "web-01:22", "web[01:99999999]", "db-[a:z]",
)  # fmt: skip

_alphabet = st.characters(codec="utf-8", exclude_categories=["Cs"])
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(_alphabet, max_size=25),
    st.lists(st.sampled_from(HOSTILE), min_size=2, max_size=4).map("".join),
    st.text("abcz019.-_:[]*?! ;$`'\"\\\n\t", max_size=20),
)
scalar = st.one_of(
    hostile_text,
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)
json_value = st.recursive(
    scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                    st.dictionaries(hostile_text, inner, max_size=4)),
    max_leaves=12,
)  # fmt: skip


def _lines() -> list[str]:
    return fixture_lines() or ["x"]


fixture_line = st.sampled_from(_lines())
cut_line = fixture_line.flatmap(lambda line: st.integers(0, len(line)).map(lambda i: line[:i]))
spliced = st.lists(
    st.one_of(fixture_line, cut_line, hostile_text, fixture_line.map(lambda s: s.upper())),
    max_size=25,
).map(lambda items: "\n".join(items).encode())
raw = st.one_of(st.binary(max_size=400), st.text(_alphabet, max_size=200).map(str.encode))


# --- documents with one part replaced -------------------------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {**node, head: _replace(node[head], rest, value)}
    copy = list(node)
    copy[head] = _replace(copy[head], rest, value)
    return copy


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def _drop(node: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        if isinstance(node, dict):
            return {k: v for k, v in node.items() if k != path[0]}
        return [v for i, v in enumerate(node) if i != path[0]]
    head = path[0]
    if isinstance(node, dict):
        return {**node, head: _drop(node[head], path[1:])}
    copy = list(node)
    copy[head] = _drop(copy[head], path[1:])
    return copy


def mutated(document: Any) -> st.SearchStrategy[Any]:
    """``document`` with 1-3 parts replaced by hostile values or dropped."""
    paths = _paths(document)

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        doc = document
        for _ in range(draw(st.integers(1, 3))):
            current = _paths(doc)
            path = draw(st.sampled_from(current if current else paths))
            choice = draw(st.integers(0, 5))
            leaf = _get(doc, path)
            if path and choice == 0:
                doc = _drop(doc, path)
            elif choice in (1, 2) and isinstance(leaf, str | int):
                # a valid value with something hostile around it: "web-01\n", "--x 22"
                extra = draw(hostile_text)
                text = f"{leaf}{extra}" if choice == 1 else f"{extra}{leaf}"
                doc = _replace(doc, path, text)
            elif choice == 3 and path and isinstance(_get(doc, path[:-1]), dict):
                parent, key = path[:-1], path[-1]
                container = _get(doc, parent)
                renamed = {(f"{k}{draw(hostile_text)}" if k == key else k): v
                           for k, v in container.items()}  # fmt: skip
                doc = _replace(doc, parent, renamed)
            else:
                doc = _replace(doc, path, draw(json_value))
        return doc

    return build()


def _dump_yaml(doc: Any) -> bytes:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode()
    except (yaml.YAMLError, ValueError, RecursionError):
        return json.dumps(doc, default=str).encode()  # JSON is YAML too


def _yaml_docs(paths: list[Path]) -> list[Any]:
    docs = []
    for path in paths:
        docs.append(yaml.safe_load(path.read_text(encoding="utf-8")))
    return [d for d in docs if d is not None]


def _yaml_of(docs: list[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(*(mutated(d).map(_dump_yaml) for d in docs))


# --- per target ---------------------------------------------------------------------------

_WORDS = (
    "help", "run", "status", "approve", "reject", "pause", "resume", "abort", "freeze",
    "unfreeze", "windows", "reload", "exception", "show", "list", "assess", "--dry-run",
    "--at", "--package", "--hash", "until", "weekly", "123", "#12", "tomorrow 02:00",
    "2030-01-01T00:00:00+00:00", "in 2h", "\u201cquoted\u201d", "\u2014at", "'", '"',
)  # fmt: skip

slash_inputs = st.one_of(
    raw,
    st.lists(st.one_of(st.sampled_from(_WORDS), hostile_text), max_size=8).map(
        lambda words: " ".join(words).encode()
    ),
)

_plan_docs = _yaml_docs(sorted((EXAMPLES / "plans").glob("*.yml")))
plan_inputs = st.one_of(_yaml_of(_plan_docs), spliced, raw)

_SEL_TOKENS = (
    "group:web", "tag:pci", "host:db-*", "env:prod", "all", "and", "or", "not", "(", ")",
    "AND", "Not", "group:", ":", "host:web-0[1-3]", "kind:x", "group:prod*", "tag:a?c",
)  # fmt: skip
selector_inputs = st.one_of(
    raw,
    st.lists(st.one_of(st.sampled_from(_SEL_TOKENS), hostile_text), max_size=12).map(
        lambda parts: " ".join(parts).encode()
    ),
    st.lists(st.sampled_from(_SEL_TOKENS), max_size=40).map(lambda p: " ".join(p).encode()),
    st.integers(1, 400).map(lambda n: ("not " * n + "all").encode()),
    st.integers(1, 400).map(lambda n: ("(" * n + "all" + ")" * n).encode()),
)

_inventory_yaml_docs = _yaml_docs(
    [EXAMPLES / "inventory" / "hosts.yml",
     *sorted(p for p in (FIXTURES / "inventory").rglob("*.y*ml") if "_vars" not in str(p))]
)  # fmt: skip
_static_doc = {
    "hosts": [
        {"name": "web-01", "address": "10.0.0.1", "port": 22, "user": "deploy",
         "groups": ["web", "prod"], "tags": ["pci"], "environment": "production",
         "owner": "team-web", "criticality": "high", "internet_facing": True,
         "private_key_file": "/k", "become": True, "jump_host": "jump",
         "accept_new_host_key": False, "vars": {"a": 1}},
        {"name": "db-01"},
    ]
}  # fmt: skip
inventory_yaml_inputs = st.one_of(_yaml_of([*_inventory_yaml_docs, _static_doc]), spliced, raw)


# The strategies a composite draws from are built once, here: one built inside the
# composite is a new object on every draw, validated again each time (that alone made
# the INI and CSV generators 3-5x slower, for the same examples).
_ini_name = st.one_of(st.sampled_from(("web", "db", "all", "prod")), hostile_text)
_ini_suffix = st.sampled_from(("", ":vars", ":children", ":bogus"))
_ini_pairs = st.lists(st.tuples(
    st.sampled_from(("ansible_host", "ansible_port", "ansible_user", "criticality",
                     "internet_facing", "patchgate_tags", "environment",
                     "ansible_ssh_common_args", "x")),
    st.one_of(hostile_text, st.sampled_from(("'-J j'", "22", "[1,2]", "{'a': 1}"))),
), max_size=3)  # fmt: skip


@st.composite
def _ini(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 5))
        name = draw(_ini_name)
        if kind == 0:
            suffix = draw(_ini_suffix)
            lines.append(f"[{name}{suffix}]")
        else:
            pairs = draw(_ini_pairs)
            lines.append(" ".join([name, *(f"{k}={v}" for k, v in pairs)]))
    return "\n".join(lines).encode()


inventory_ini_inputs = st.one_of(_ini(), spliced, raw)

_CSV_HEADERS = (
    "name", "address", "port", "user", "groups", "tags", "environment", "owner",
    "criticality", "internet_facing", "jump_host", "private_key_file", "extra",
)  # fmt: skip


_csv_headers = st.lists(st.one_of(st.sampled_from(_CSV_HEADERS), hostile_text), max_size=6)
_csv_rows = st.lists(st.lists(hostile_text, max_size=7), max_size=5)


@st.composite
def _csv(draw: st.DrawFn) -> bytes:
    headers = draw(_csv_headers)
    rows = draw(_csv_rows)

    def cell(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if draw(st.booleans()) else value

    text = "\n".join(",".join(cell(c) for c in row) for row in [headers, *rows])
    return text.encode()


inventory_csv_inputs = st.one_of(_csv(), spliced, raw)
inventory_any_inputs = st.one_of(inventory_yaml_inputs, inventory_ini_inputs, inventory_csv_inputs)

package_output_inputs = st.one_of(
    st.tuples(st.integers(0, 255), spliced).map(lambda t: bytes([t[0]]) + t[1]),
    st.tuples(st.integers(0, 255), spliced, spliced, spliced).map(
        lambda t: bytes([t[0]]) + b"\x1e".join(t[1:])
    ),
    raw,
)

_osv_docs = [
    json.loads(p.read_text(encoding="utf-8"))
    for p in sorted((FIXTURES / "advisories" / "osv").glob("*.json"))
]
osv_inputs = st.one_of(
    st.one_of(*(mutated(d) for d in _osv_docs)).map(lambda d: json.dumps(d).encode()),
    json_value.map(lambda d: json.dumps(d).encode()),
    raw,
)
_kev_doc = json.loads((FIXTURES / "advisories" / "kev.json").read_text(encoding="utf-8"))
kev_inputs = st.one_of(mutated(_kev_doc).map(lambda d: json.dumps(d).encode()), raw)


# --- versions -----------------------------------------------------------------------------

_upstream_chars = "0123456789abcz.+~"
deb_version = st.builds(
    lambda epoch, up, rev: f"{epoch}{up}{rev}",
    st.sampled_from(("", "", "", "1:", "2:", "0:")),
    st.tuples(st.sampled_from("0123456789"), st.text(_upstream_chars, max_size=8)).map("".join),
    st.one_of(st.just(""), st.text("0123456789abz.+~", min_size=1, max_size=6).map("-{}".format)),
)
rpm_part = st.text("0123456789abcXYZ._+~^", min_size=1, max_size=8)
rpm_version = st.builds(
    lambda epoch, v, r: f"{epoch}{v}{r}",
    st.sampled_from(("", "", "1:", "2:")),
    rpm_part,
    st.one_of(st.just(""), rpm_part.map("-{}".format)),
)
version_pair_inputs = st.one_of(
    st.tuples(st.one_of(deb_version, rpm_version, hostile_text),
              st.one_of(deb_version, rpm_version, hostile_text)).map(
        lambda t: f"{t[0]}\x00{t[1]}".encode()
    ),
    raw,
)  # fmt: skip

INPUTS: dict[str, st.SearchStrategy[bytes]] = {
    "slash_command": slash_inputs,
    "plan_file": plan_inputs,
    "inventory_yaml": inventory_yaml_inputs,
    "inventory_ini": inventory_ini_inputs,
    "inventory_csv": inventory_csv_inputs,
    "inventory_by_content": inventory_any_inputs,
    "selector": selector_inputs,
    "apt_output": package_output_inputs,
    "dnf_output": package_output_inputs,
    "zypper_output": package_output_inputs,
    "osv_record": osv_inputs,
    "kev_catalogue": kev_inputs,
    "host_advisories": package_output_inputs.map(lambda b: b[1:]),
    "debian_versions": version_pair_inputs,
    "rpm_versions": version_pair_inputs,
}
