"""The search benchmark's CPU accounting at the highest concurrency (``budget_table``)."""

from __future__ import annotations

from tests.bench.search import TARGET_QPS_RATIO, Measurement, budget_table


def _row(mode: str, concurrency: int, qps: float, **cpu: float) -> Measurement:
    return Measurement(
        milvus="server",
        mode=mode,
        top_k=10,
        concurrency=concurrency,
        filter="none",
        queries=200,
        p50_ms=1.0,
        p99_ms=2.0,
        mean_ms=1.0,
        qps=qps,
        recall=1.0,
        cpu_ms=cpu,
    )


def _cells(rows: list[Measurement], floor_ms: float) -> list[list[str]]:
    table = budget_table("Milvus", rows, floor_ms)
    columns = [list(c.cells) for c in table.columns]
    return [list(r) for r in zip(*columns, strict=True)]


def test_budget_is_what_the_api_may_spend_for_the_target_ratio() -> None:
    rows = [
        _row("a", 8, 300.0, bench=2.0, api=0.0, milvus=4.0),
        _row("b", 8, 250.0, bench=3.0, api=0.0, milvus=4.0),
        _row("c", 8, 120.0, bench=3.0, api=7.0, milvus=5.0),
        _row("a", 1, 150.0, bench=2.0, api=0.0, milvus=5.0),  # serial rows are not shown
        _row("c", 1, 60.0, bench=3.0, api=8.0, milvus=6.0),
    ]
    [cells] = _cells(rows, floor_ms=1.5)
    # (a) spends 6 ms a query: 0.6 of its QPS allows (c) 10 ms, of which the client takes 3 and
    # Milvus, for the same search as (a)'s, 4.
    assert 6.0 / TARGET_QPS_RATIO - 3.0 - 4.0 == 3.0
    assert cells[:4] == ["10", "none", "6.0", "15.0"]
    assert cells[4] == f"{6.0 * 300 / 1000:.2f} / {15.0 * 120 / 1000:.2f}"  # cores busy
    assert cells[5:] == ["0.40", "0.40", "3.0", "3.5", "7.0"]  # CPU a/c, QPS c/a, budget, floor


def test_no_row_without_a_raw_measurement() -> None:
    rows = [_row("c", 8, 120.0, bench=3.0, api=7.0, milvus=5.0)]
    assert _cells(rows, floor_ms=1.5) == []
