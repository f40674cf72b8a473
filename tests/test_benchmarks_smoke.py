"""The inbox, intake, load and audit benchmarks, run tiny so they cannot rot (the real run: ``make bench``)."""

from __future__ import annotations

import pytest

from benchmarks import audit, inbox, intake, load, waiting


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
    """Two gunicorn apps, one tiny round of the three sides on SQLite (a few seconds)."""
    monkeypatch.setenv("BENCH_REDIS_URL", redis_url)  # the session's Redis, not a second one
    results = intake.run(intake.Options(rounds=1, requests=24, backends=("sqlite",), floor=True))
    [result] = results
    assert result.correct, result.checks  # every request 202; one case, receipt, audit event and job each
    assert result.checks["jobs in the ai queue"] == (24 + intake.WARMUP,) * 2
    # the floor's writes: a case, a receipt and an event in the database, a queue entry in Redis
    for what in ("floor rows", "floor receipts", "floor events", "floor queue"):
        assert result.checks[what] == (24 + intake.WARMUP,) * 2
    assert [side.name for side in result.sides] == ["intake", "floor", "bare"]
    assert all(len(side.rates) == 1 for side in result.sides) and result.ratio > 0
    assert "large-payments-dual-approval" in result.rules
    report = intake.table(results)
    assert "side/bare" in report and (">= 0.5" in report) and ("PASS" in report or "FAIL" in report)
    assert "| floor " in report
    assert intake.parse(["--rounds", "5", "--backends", "sqlite", "--floor"]) == intake.Options(
        rounds=5, backends=("sqlite",), floor=True)


@pytest.mark.slow
def test_waiting_benchmark_control_holds_waits_on_calls_decided_afterwards(monkeypatch, redis_url):
    """One round of the control on SQLite: the phase with waiters decides other calls; the waited
    calls are decided after it, and every waiter is answered with its call approved."""
    monkeypatch.setenv("BENCH_REDIS_URL", redis_url)  # the session's Redis, not a second one
    options = waiting.Options(cases_per_reviewer=1, rounds=1, backends=("sqlite",), control=True)
    [result] = waiting.run(options)
    assert (result.answered, result.decided) == (waiting.WAITERS, waiting.WAITERS)
    assert len(result.round_ratios) == 1 and result.slowest_answer_s < 30
    assert result.cpu_with_ms > 0 and result.cpu_without_ms > 0
    assert waiting.table([result]).splitlines()[-1].startswith("sqlite ")
    assert waiting.parse(["--control", "--rounds", "2"]) == waiting.Options(rounds=2, control=True)


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


@pytest.mark.slow
def test_audit_benchmark_runs_and_reports(monkeypatch, redis_url):
    """A tiny run on PostgreSQL (a temporary database on the test server): both sides export the same rows."""
    if audit.database_url() is None:
        pytest.skip("PostgreSQL only: the PostgreSQL pass of the suite runs it")
    monkeypatch.setenv("BENCH_REDIS_URL", redis_url)  # the session's Redis, not a second one
    found = audit.run(audit.Options(decisions=300, events=2_000, seconds=0.5, writers=2))
    assert found.export["rows"] == found.copy_rows == 300  # one row per decided case, by the export and by COPY
    assert found.verified == found.events >= 2_000
    assert set(found.writes) == {1, 2} and all(rate > 0 for rate in found.writes.values())
    assert found.export["rss_peak_mb"] >= found.export["rss_before_mb"] > 0
    report = audit.table(found)
    assert "export / COPY" in report and ">= 0.5" in report and "2 writers / 1" in report
    assert audit.parse(["--full"]) == audit.Options(decisions=200_000, events=1_000_000)


def test_audit_benchmark_says_it_needs_postgresql(capsys, monkeypatch):
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.delenv("BENCH_DATABASE_URL", raising=False)
    assert audit.main(["--decisions", "10"]) == 0
    assert "no PostgreSQL: set BENCH_DATABASE_URL or TEST_DATABASE_URL" in capsys.readouterr().out
