"""serve freezes its start-up heap (bot.heap): a full collection then walks only what
serve allocated since, not the modules, the Bolt app and the mappers it built first."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bot.heap import freeze_startup_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_objects_built_before_the_freeze_are_out_of_the_full_collections_reach(
    unfrozen: None,
) -> None:
    built_at_start = [object() for _ in range(10)]  # a container the collector tracks
    assert any(o is built_at_start for o in gc.get_objects())
    frozen = freeze_startup_heap()
    assert frozen >= 1
    assert not any(o is built_at_start for o in gc.get_objects())  # in no generation
    made_after = [object()]
    gc.collect(0)
    gc.collect(1)
    assert any(o is made_after for o in gc.get_objects())  # later objects still collected


def test_serve_freezes_its_heap_before_it_starts_serving() -> None:
    import inspect

    from bot.cli import serve

    source = inspect.getsource(serve.serve)
    assert source.index("freeze_startup_heap()") < source.index("await server.run()")
