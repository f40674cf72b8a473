"""The inbox, intake and load benchmarks, run tiny so they cannot rot (the real run: ``make bench``)."""

from __future__ import annotations

import pytest

from benchmarks import inbox, intake, load


def test_inbox_benchmark_runs_and_reports(capsys, monkeypatch, redis_url):
    monkeypatch.setenv("BENCH_REDIS_URL", redis_url)  # the session's Redis, not a second one
    results = inbox.run(inbox.Options(sizes=(200, 2_000), iterations=5, backends=("sqlite",)))
    assert {(r.cases, r.what) for r in results} == {(200, "queue page"), (200, "next case"),
                                                    (2_000, "queue page"), (2_000, "next case")}
    assert all(0 < r.p50_ms <= r.p95_ms for r in results)
    report = inbox.table(results)
    assert "p95@2k ms" in report and "p95 2k/200" in report
    assert report.count("sqlite") == 2


@pytest.mark.slow
def test_intake_benchmark_runs_checks_and_reports(monkeypatch, redis_url):
    """Two gunicorn apps, one tiny round on SQLite (a few seconds)."""
    monkeypatch.setenv("BENCH_REDIS_URL", redis_url)  # the session's Redis, not a second one
    results = intake.run(intake.Options(rounds=1, requests=24, backends=("sqlite",)))
    [result] = results
    assert result.correct, result.checks  # every request 202; one case, receipt, audit event and job each
    assert result.checks["jobs in the ai queue"] == (24 + intake.WARMUP,) * 2
    assert len(result.intake.rates) == len(result.bare.rates) == 1 and result.ratio > 0
    assert "large-payments-dual-approval" in result.rules
    report = intake.table(results)
    assert "intake/bare" in report and (">= 0.5" in report) and ("PASS" in report or "FAIL" in report)
    assert intake.parse(["--rounds", "5", "--backends", "sqlite"]) == intake.Options(rounds=5, backends=("sqlite",))


@pytest.mark.slow
def test_load_test_runs_accounts_and_reports(monkeypatch, redis_url):
    """The real processes under a few seconds of light load on SQLite (the latency targets are not asserted)."""
    monkeypatch.setenv("BENCH_REDIS_URL", redis_url)  # the session's Redis, not a second one
    results = load.run(load.Options(duration=5, rate=4, reviewers=2, backends=("sqlite",)))
    [result] = results
    assert result.load.traffic.intake.count == 20
    assert load.holds(result.checks), result.checks  # created = analysed = decided + open; approvals executed
    assert result.audit.ok and result.locked[0] == 0 and result.alive[0] == result.alive[1]
    report = load.table(results)
    for criterion in ("intake p95", "decision p95", "errors", "RQ queue depth", "accounting", "audit verify",
                      '"database is locked"', "processes"):
        assert f"| {criterion} " in report
    assert "PASS" in report
    assert load.parse(["--duration", "20", "--backends", "sqlite"]) == load.Options(duration=20, backends=("sqlite",))
