"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgcluster import PgCluster, missing_reason


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster of the test's own (never the shared server)."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with PgCluster.create() as made:
        yield made
