"""The integration harness' staleness checker, on synthetic histories (no processes, no Redis).

The rule under test (integration/checker.py): a read of entity ``e`` that began at ``t`` must
return at least the newest version of ``e`` whose invalidation was acknowledged strictly before
``t - bound``; REMOTE hits and function results must do so with ``bound = 0``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from integration.analysis import analyze, latency_stats, percentile
from integration.checker import History, check
from integration.config import RunConfig, parse_faults
from integration.faults import plan_faults
from integration.model import (
    CancelProbe,
    FaultWindow,
    FreshChange,
    InstanceLife,
    ReadRecord,
    RunData,
    Source,
    TapArrival,
    WriteRecord,
)
from integration.report import render, to_json

MS = 1_000_000
BOUND_MS = 500.0
BOUND = int(BOUND_MS * MS)


def write(
    version: int,
    ack: int | None,
    *,
    entity: int = 1,
    begin: int | None = None,
    via: str = "publisher",
) -> WriteRecord:
    start = (ack if ack is not None else 10_000 * MS) - 5 * MS
    begin_ns = begin if begin is not None else start - 2 * MS
    return WriteRecord(
        writer=0,
        entity=entity,
        version=version,
        begin_ns=begin_ns,
        commit_ns=begin_ns + MS,
        invalidate_ns=start,
        ack_ns=ack,
        via=via,
        attempts=1,
    )


def read(
    version: int, start: int, *, entity: int = 1, source: Source = "local", end: int | None = None
) -> ReadRecord:
    return ReadRecord(
        slot=0,
        incarnation=1,
        entity=entity,
        start_ns=start,
        end_ns=end if end is not None else start + MS // 10,
        version=version,
        source=source,
    )


# -- the rule -------------------------------------------------------------------------------


def test_no_writes_constrain_nothing() -> None:
    result = check([read(1, 5_000 * MS)], [], BOUND_MS)
    assert result.reads == 1
    assert result.constrained == 0
    assert not result.stale and not result.remote_stale and not result.errors


def test_old_version_within_the_bound_is_allowed() -> None:
    ack = 1_000 * MS
    result = check([read(1, ack + BOUND - 1)], [write(2, ack)], BOUND_MS)
    assert not result.stale
    assert result.constrained == 0


def test_old_version_beyond_the_bound_is_stale() -> None:
    ack = 1_000 * MS
    late = ack + BOUND + 40 * MS
    result = check([read(1, late)], [write(2, ack)], BOUND_MS)
    assert len(result.stale) == 1
    stale = result.stale[0]
    assert stale.required_version == 2
    assert stale.write.version == 2
    assert stale.late_ms == pytest.approx(540.0)
    assert result.constrained == 1


def test_boundary_exactly_at_the_bound_is_not_constrained() -> None:
    ack = 1_000 * MS
    result = check([read(1, ack + BOUND)], [write(2, ack)], BOUND_MS)
    assert not result.stale
    assert result.constrained == 0


def test_boundary_one_nanosecond_past_the_bound_is_stale() -> None:
    ack = 1_000 * MS
    result = check([read(1, ack + BOUND + 1)], [write(2, ack)], BOUND_MS)
    assert [s.read.start_ns for s in result.stale] == [ack + BOUND + 1]


def test_the_required_version_or_newer_passes() -> None:
    ack = 1_000 * MS
    reads = [read(2, ack + BOUND + MS), read(3, ack + BOUND + 2 * MS)]
    result = check(reads, [write(2, ack), write(3, ack + BOUND + MS // 2)], BOUND_MS)
    assert not result.stale
    assert result.constrained == 2


def test_unacknowledged_writes_do_not_constrain() -> None:
    result = check([read(1, 50_000 * MS)], [write(2, None)], BOUND_MS)
    assert not result.stale
    assert result.constrained == 0


def test_requirement_is_the_newest_acknowledged_version_not_the_last_acknowledged() -> None:
    # Two writers: v3 committed after v2 but its invalidation was acknowledged first.
    writes = [write(3, 1_000 * MS), write(2, 1_100 * MS)]
    t = 1_100 * MS + BOUND + MS
    result = check([read(2, t), read(3, t + MS)], writes, BOUND_MS)
    assert [s.read.version for s in result.stale] == [2]
    assert result.stale[0].required_version == 3
    assert result.stale[0].write.version == 3


def test_stale_read_cites_the_earliest_acknowledgement_it_missed() -> None:
    writes = [write(2, 1_000 * MS), write(3, 2_000 * MS)]
    t = 5_000 * MS
    result = check([read(1, t), read(2, t + MS)], writes, BOUND_MS)
    cited = {s.read.version: (s.write.version, s.late_ms) for s in result.stale}
    assert cited == {1: (2, 4_000.0), 2: (3, 3_001.0)}


def test_a_stale_read_between_two_acknowledgements_is_judged_by_the_earlier_only() -> None:
    writes = [write(2, 1_000 * MS), write(3, 1_400 * MS)]
    t = 1_000 * MS + BOUND + MS  # past v2's bound, within v3's
    result = check([read(2, t), read(1, t)], writes, BOUND_MS)
    assert [(s.read.version, s.required_version) for s in result.stale] == [(1, 2)]


def test_entities_are_independent() -> None:
    writes = [write(2, 1_000 * MS, entity=1)]
    t = 3_000 * MS
    result = check([read(1, t, entity=2), read(1, t, entity=1)], writes, BOUND_MS)
    assert [s.read.entity for s in result.stale] == [1]
    assert result.constrained == 1


# -- REMOTE and function results: no bound ----------------------------------------------------


@pytest.mark.parametrize("source", ["remote", "function"])
def test_remote_and_function_reads_have_no_bound(source: Source) -> None:
    ack = 1_000 * MS
    result = check([read(1, ack + 1, source=source)], [write(2, ack)], BOUND_MS)
    assert not result.stale  # within the bound for the LOCAL rule...
    assert len(result.remote_stale) == 1  # ...but REMOTE must already be fresh
    assert result.remote_stale[0].late_ms == pytest.approx(1e-6)


def test_local_hits_within_the_bound_are_not_strictly_checked() -> None:
    ack = 1_000 * MS
    result = check([read(1, ack + 1, source="local")], [write(2, ack)], BOUND_MS)
    assert not result.remote_stale and not result.stale


def test_remote_read_starting_at_the_acknowledgement_instant_is_not_constrained() -> None:
    ack = 1_000 * MS
    result = check([read(1, ack, source="remote")], [write(2, ack)], BOUND_MS)
    assert not result.remote_stale


# -- errors and impossible reads ----------------------------------------------------------------


def test_errors_are_collected_and_not_judged() -> None:
    failed = replace(read(-1, 5_000 * MS), source="error", error="RuntimeError('boom')")
    result = check([failed], [write(2, 1_000 * MS)], BOUND_MS)
    assert result.errors == [failed]
    assert not result.stale and not result.remote_stale and not result.future


def test_a_version_from_the_future_is_flagged() -> None:
    # v2's transaction began after the read had already ended.
    writes = [write(2, 3_000 * MS, begin=2_000 * MS)]
    result = check([read(2, 1_000 * MS, end=1_500 * MS)], writes, BOUND_MS)
    assert [r.version for r in result.future] == [2]


def test_a_version_committed_while_the_read_ran_is_not_from_the_future() -> None:
    writes = [write(2, 3_000 * MS, begin=1_200 * MS)]
    result = check([read(2, 1_000 * MS, end=1_500 * MS)], writes, BOUND_MS)
    assert not result.future


def test_initial_version_is_never_from_the_future() -> None:
    result = check([read(1, 10 * MS)], [], BOUND_MS)
    assert not result.future


def test_history_required_is_strictly_before() -> None:
    history = History([write(2, 100), write(3, 200)])
    assert history.required(1, 100) is None
    assert history.required(1, 101) == (2, 1)
    assert history.required(1, 201) == (3, 2)
    assert history.required(2, 10**12) is None


# -- the report's verdict follows the checker --------------------------------------------------


def _run_data(reads: list[ReadRecord], writes: list[WriteRecord]) -> RunData:
    config = RunConfig(instances=1, duration=10.0, warmup=0.0, faults=())
    data = RunData(
        config=config,
        t0_ns=0,
        end_ns=10_000 * MS,
        redis_url="redis://127.0.0.1:1/0",
        proxy_url="redis://127.0.0.1:2/0",
        reads=reads,
        writes=writes,
        lives=[InstanceLife(0, 1, 123, 0, 0, None, None)],
        fresh=[FreshChange(0, 1, 0, True)],
    )
    return data


def test_report_fails_on_a_stale_read_and_passes_without() -> None:
    writes = [write(2, 1_000 * MS)]
    good = analyze(_run_data([read(2, 3_000 * MS), read(2, 3_001 * MS)], writes))
    assert good.passed, [v for v in good.verdicts if not v.ok]
    bad = analyze(_run_data([read(1, 3_000 * MS)], writes))
    assert not bad.passed
    failed = [v.name for v in bad.verdicts if not v.ok and v.kind == "invariant"]
    assert failed and "stale" in failed[0]
    text = render(bad)
    assert "FAIL" in text and "read v1" in text
    assert to_json(bad)["check"]["stale"][0]["required_version"] == 2


def test_report_fails_on_a_surfaced_error() -> None:
    failed = replace(read(-1, 3_000 * MS), source="error", error="ValueError()")
    report = analyze(_run_data([read(1, 2_000 * MS), failed], []))
    assert not report.passed
    assert any("error surfaced" in v.name and not v.ok for v in report.verdicts)


def test_lost_cancellations_are_reported_but_not_fatal() -> None:
    data = _run_data([read(2, 2_000 * MS)], [write(2, 1_000 * MS)])
    data.cancel_probes = [CancelProbe(0, 1, MS, "honored"), CancelProbe(0, 1, 2 * MS, "lost")]
    report = analyze(data)
    assert report.passed
    assert report.cancel_probes == {"honored": 1, "lost": 1}
    (verdict,) = [v for v in report.verdicts if "cancelled" in v.name]
    assert (verdict.ok, verdict.kind, verdict.value) == (False, "expectation", "1 lost of 2 probes")
    assert "WARN" in render(report)


def test_slow_calls_are_reported_against_the_timeout_but_not_fatal() -> None:
    # socket_timeout 0.5 s + function 5 ms (+ 100 ms allowance): a 1.5 s miss is slow, a
    # 200 ms REMOTE hit is not, and LOCAL hits are not judged at all.
    reads = [
        read(2, 2_000 * MS, source="function", end=3_510 * MS),
        read(2, 4_000 * MS, source="remote", end=4_200 * MS),
        read(2, 5_000 * MS, source="local", end=7_000 * MS),
    ]
    report = analyze(_run_data(reads, [write(2, 1_000 * MS)]))
    assert report.passed
    (verdict,) = [v for v in report.verdicts if "socket_timeout" in v.name]
    assert verdict.kind == "expectation" and not verdict.ok
    assert verdict.value == "1 of 2 non-LOCAL reads slower; slowest 1,510 ms"


def test_fault_recovery_and_latency_are_computed_from_the_records() -> None:
    data = _run_data(
        [read(2, 1_000 * MS, source="function"), read(2, 2_600 * MS)],
        [write(2, 900 * MS)],
    )
    data.faults = [
        FaultWindow(0, "drop", 2_000 * MS, 2_100 * MS, 2.0, {"dropped": 3}),
    ]
    data.planned_faults = 1
    data.taps = [TapArrival(0, 1, 896 * MS, 1, "entity", "1", 1, 1)]  # write began at 895 ms
    report = analyze(data)
    (fault,) = report.faults
    assert fault.took_effect
    assert fault.recovery_s == pytest.approx(0.5)  # first LOCAL hit 500 ms after the end
    assert report.latency.count == 1 and report.latency.max_ms == pytest.approx(1.0)


# -- helpers --------------------------------------------------------------------------------


def test_percentile_and_latency_stats() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    stats = latency_stats([3.0, 1.0, 2.0])
    assert (stats.count, stats.p50_ms, stats.max_ms) == (3, 2.0, 3.0)
    assert latency_stats([]).count == 0


def test_fault_list_parsing_and_plan() -> None:
    assert parse_faults("none") == ()
    assert parse_faults("pause, drop") == ("pause", "drop")
    with pytest.raises(ValueError):
        parse_faults("meteor")
    config = RunConfig(duration=20.0, max_staleness_ms=200.0)
    plan = plan_faults(config)
    assert sorted(f.kind for f in plan) == sorted(parse_faults("all"))
    assert [f.at_s for f in plan] == sorted(f.at_s for f in plan)
    pause = next(f for f in plan if f.kind == "pause")
    assert pause.hold_s * 1000 > config.max_staleness_ms
    external = RunConfig(redis_url="redis://example:6379/0")
    assert {f.kind for f in plan_faults(external)}.isdisjoint({"pause", "restart"})
