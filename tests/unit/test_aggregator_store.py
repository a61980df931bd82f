"""The aggregator's SQLite store: metered work accumulates per stag and survives a restart."""

from __future__ import annotations

from pathlib import Path

from stagpack.aggregator.store import SessionCost
from stagpack.edge.aggregator_store import SqliteAggregatorStore


def test_metered_work_adds_up_per_stag_and_survives_reopening(tmp_path: Path) -> None:
    first, second = b"a" * 32, b"b" * 32
    store = SqliteAggregatorStore(tmp_path / "aggregator.db")
    assert store.cost(first) == SessionCost()
    costs = [SessionCost(1, 3, 12, 9, 9_000_000), SessionCost(1, 2, 9, 6, 6_000_000), SessionCost(1, 0, 3, 0, 0)]
    for cost in costs:
        store.add_cost(first, cost)
    store.add_cost(second, SessionCost(sessions=1, calls=3))
    store.close()
    again = SqliteAggregatorStore(tmp_path / "aggregator.db")
    assert again.cost(first) == SessionCost(3, 5, 24, 15, 15_000_000) == costs[0] + costs[1] + costs[2]
    assert again.cost(second) == SessionCost(sessions=1, calls=3)
    again.close()
