"""The inventory's YAML reader builds exactly what ``yaml.load`` with the same safe loader
builds: its fast construction of mappings, sequences and strings must not change a value."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from integrations.inventory.hostvars import Vaulted
from integrations.inventory.sources import load_yaml_text, read_yaml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SOURCE = Path("inventory.yml")

DOCS = {
    "scalars": """
all:
  vars:
    an_int: 42
    octal: 0o17
    hexa: 0x1f
    a_float: 1.5e3
    inf: .inf
    yes_no: [yes, no, true, False, on, off]
    nulls: [~, null, ]
    when: 2024-03-01
    stamp: 2024-03-01T12:00:00Z
    quoted: "42"
    single: '  spaced  '
    folded: >
      one
      two
    literal: |
      a
      b
    binary: !!binary aGVsbG8=
    tagged_str: !!str 12
  hosts:
    web-01: {ansible_host: 10.0.0.1, ansible_port: 2222}
    web-02:
""",
    "anchors and merges": """
defaults: &defaults
  ansible_user: deploy
  tags: &tags [pci, edge]
all:
  children:
    web:
      vars:
        <<: *defaults
        extra: 1
      hosts:
        w1: {tags: *tags}
        w2: *defaults
""",
    "sets, ordered maps, pairs": """
all:
  vars:
    a_set: !!set {x, y}
    an_omap: !!omap [{a: 1}, {b: 2}]
    pairs: !!pairs [{a: 1}, {a: 2}]
""",
    "vault": """
all:
  vars:
    ansible_become_password: !vault |
      $ANSIBLE_VAULT;1.1;AES256
      6162
""",
    "duplicate keys keep the last": "all:\n  hosts:\n    a: {x: 1}\n    a: {x: 2}\n",
    "empty document": "",
    "recursive": "a: &a\n  self: *a\n",
}


class Stock(yaml.CSafeLoader):
    """PyYAML's own C safe loader (its resolver and constructor) plus the !vault marker."""


Stock.add_constructor("!vault", lambda _, node: Vaulted("inventory.yml", node.start_mark.line + 1))


def stock(text: str) -> object:
    return yaml.load(text, Loader=Stock)


PLAIN = [
    "Yes",
    "NO",
    "y",
    "n",
    "~",
    "null",
    "Null",
    "0x1F",
    "0o17",
    "017",
    "+1",
    "-2",
    "1_000",
    "-.5",
    ".nan",
    ".NaN",
    "+.inf",
    "1e3",
    "6.8523015e+5",
    "190:20:30",
    "12:30",
    "2001-12-14t21:59:43.10-05:00",
    "2002-12-14",
    "=",
    "<<",
    "on",
    "Off",
    "TRUE",
    "tRuE",
    "web-01",
    "10.0.0.1",
    "_x",
    "-x",
    ".x",
    "0",
    "00",
    "0b101",
    "0x",
    "1.2.3",
    ":colon",
    "/path",
    "x:y",
]


def test_every_plain_scalar_resolves_as_pyyaml_resolves_it() -> None:
    for value in PLAIN:
        for text in (f"k: {value}\n", f"k: '{value}'\n", f"- {value}\n", f"{{k: [{value}]}}\n"):
            try:
                expected = stock(text)
            except yaml.YAMLError:
                continue  # not valid in this position
            got = load_yaml_text(text, SOURCE)
            assert repr(got) == repr(expected), text


@pytest.mark.parametrize("name", sorted(DOCS))
def test_fast_construction_equals_yaml_load(name: str) -> None:
    text = DOCS[name]
    fast = load_yaml_text(text, SOURCE)
    if name == "recursive":
        assert isinstance(fast, dict) and fast["a"]["self"] is fast["a"]
        return
    assert fast == stock(text)
    assert repr(fast) == repr(stock(text))  # same types, same order


def test_aliases_are_the_same_object_as_with_yaml_load() -> None:
    data = load_yaml_text(DOCS["anchors and merges"], SOURCE)
    assert data["all"]["children"]["web"]["hosts"]["w1"]["tags"] is data["defaults"]["tags"]


def test_vault_values_stay_located_markers() -> None:
    data = load_yaml_text(DOCS["vault"], SOURCE)
    assert data["all"]["vars"]["ansible_become_password"] == Vaulted("inventory.yml", 4)


@pytest.mark.parametrize(
    "text", ["? [a, b]\n: 1\n", "{[a]: 1}\n", "all: !unknown x\n", "a: !!int nope\n"]
)
def test_bad_documents_raise_what_yaml_load_raises(text: str) -> None:
    with pytest.raises(Exception) as expected:
        stock(text)
    with pytest.raises(type(expected.value)) as got:
        load_yaml_text(text, SOURCE)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize(
    "path", sorted(FIXTURES.rglob("*.y*ml")), ids=lambda p: str(p.relative_to(FIXTURES))
)
def test_every_yaml_fixture_reads_as_yaml_load_reads_it(path: Path) -> None:
    with path.open("rb") as stream:
        expected = yaml.load(io.BytesIO(stream.read()), Loader=Stock)
    assert read_yaml(path) == expected


def test_a_value_yaml_cannot_build_is_a_clear_inventory_error(tmp_path: Path) -> None:
    from workflows.errors import InventoryError

    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  vars:\n    ansible_port: !!int twenty-two\n")
    with pytest.raises(InventoryError, match=r"hosts.yml: invalid YAML value: invalid literal"):
        read_yaml(path)
