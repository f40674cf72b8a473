"""A smoke run of ``benchmarks.sweep`` with small numbers (the real run: ``python -m benchmarks.sweep``)."""

from __future__ import annotations

from benchmarks import sweep


def test_the_sweep_benchmark_runs_and_reports(capsys, monkeypatch, redis_url):
    monkeypatch.setenv("BENCH_REDIS_URL", redis_url)  # the session's Redis, not a second one
    options = sweep.Options(sizes=(300, 600), changes=9, repeat=1, backends=("sqlite",))
    results = sweep.run(options)
    assert [(r.open_cases, r.changes) for r in results] == [(300, 9), (600, 9)]  # each sweep took the 9 steps
    table = sweep.table(results)
    assert "sqlite" in table and "nothing due s" in table
    assert sweep.parse(["--sizes", "10,20", "--backends", "sqlite"]).sizes == (10, 20)
