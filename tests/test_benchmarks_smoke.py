"""The inbox benchmark, run tiny so it cannot rot (the real run: ``make bench``)."""

from __future__ import annotations

from benchmarks import inbox


def test_inbox_benchmark_runs_and_reports(capsys, monkeypatch, redis_url):
    monkeypatch.setenv("BENCH_REDIS_URL", redis_url)  # the session's Redis, not a second one
    results = inbox.run(inbox.Options(sizes=(200, 2_000), iterations=5, backends=("sqlite",)))
    assert {(r.cases, r.what) for r in results} == {(200, "queue page"), (200, "next case"),
                                                    (2_000, "queue page"), (2_000, "next case")}
    assert all(0 < r.p50_ms <= r.p95_ms for r in results)
    report = inbox.table(results)
    assert "p95@2k ms" in report and "p95 2k/200" in report
    assert report.count("sqlite") == 2
