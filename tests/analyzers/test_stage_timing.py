"""StageTiming: per-stage time per frame against the frame period, with real stages that sleep."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from bagscope.analyzers.stage_timing import StageTiming
from bagscope.errors import BagscopeError
from bagscope.pipeline.stage import StageResult
from tests.analyzers._drives import (
    SCENARIOS,
    START_NS,
    clean_drive,
    draw_figures,
    problems,
    real_logs,
    real_sync_topics,
    run,
)

if TYPE_CHECKING:
    from pathlib import Path

    from bagscope.replay.frame import Frame

PERIOD_NS = 100_000_000  # the simulated lidar's 10 Hz: the frame period of a lidar-led sync
ONE_SECOND = (START_NS, START_NS + 1_000_000_000)  # 10 sweeps


class Sleeper:
    """A frame stage that takes a known time per frame."""

    def __init__(self, seconds: float, name: str = "sleeper") -> None:
        self.name = name
        self.seconds = seconds

    def process(self, frame: Frame) -> None:
        time.sleep(self.seconds)

    def finish(self) -> StageResult:
        return StageResult()


def test_a_stage_that_fits_the_period_passes() -> None:
    result = run(clean_drive("urban"), [Sleeper(0.02), StageTiming()])
    timing = result.results["stage_timing"]
    assert result.timings.period_ns == PERIOD_NS
    assert problems(timing) == []
    (total,) = timing.events
    assert total.kind == "within_budget"
    assert total.severity == "info"
    assert total.evidence["budget_ns"] == PERIOD_NS
    assert total.evidence["frames"] == 30
    assert 20_000_000 <= total.evidence["value_ns"] < PERIOD_NS
    assert {c.name: c.status for c in timing.checks} == {
        "time per frame: sleeper": "pass",
        "time per frame: all stages": "pass",
    }
    assert timing.metrics.value("frames", label="sleeper") == 30
    assert timing.metrics.value("budget_ms") == 100.0
    assert timing.metrics.value("frame_p50_ms", label="sleeper") >= 20.0
    times, values = timing.metrics.series("frame_ms", label="sleeper")
    assert times[0] == START_NS  # the first sweep's stamp
    assert len(values) == 30
    assert draw_figures(timing) == 1


def test_a_stage_slower_than_the_period_is_over_budget() -> None:
    start, end = ONE_SECOND
    stages = [Sleeper(0.005, name="quick"), Sleeper(0.15, name="slow"), StageTiming()]
    result = run(clean_drive("urban"), stages, start_ns=start, end_ns=end)
    timing = result.results["stage_timing"]
    assert result.frames == 10
    found = problems(timing)
    assert [(e.kind, e.severity, e.evidence["stage"]) for e in found] == [
        ("over_budget", "warning", "slow"),
        ("over_budget", "warning", "all stages"),
    ]
    slow, total = found
    assert slow.evidence["value_ns"] >= 150_000_000
    assert slow.evidence["budget_ns"] == PERIOD_NS
    assert total.evidence["value_ns"] >= 155_000_000
    assert set(total.evidence["stages_ns"]) == {"quick", "slow"}
    assert "cannot keep up in real time" in total.message
    statuses = {c.name: c.status for c in timing.checks}
    assert statuses == {
        "time per frame: quick": "pass",
        "time per frame: slow": "warn",
        "time per frame: all stages": "warn",
    }
    assert draw_figures(timing) == 1


def test_a_given_budget_replaces_the_period() -> None:
    start, end = ONE_SECOND
    stages = [Sleeper(0.02), StageTiming(budget_ns=10_000_000, percentile=50)]
    result = run(clean_drive("urban"), stages, start_ns=start, end_ns=end)
    timing = result.results["stage_timing"]
    kinds = [(e.evidence["stage"], e.severity) for e in timing.events]
    assert kinds == [("sleeper", "warning"), ("all stages", "warning")]
    assert timing.events[0].evidence["budget_ns"] == 10_000_000
    assert timing.events[0].evidence["percentile"] == 50


def test_without_frames_there_is_nothing_to_judge() -> None:
    result = run(clean_drive("urban"), [StageTiming()], topics=None)
    timing = result.results["stage_timing"]
    assert timing.events == []
    assert [c.status for c in timing.checks] == ["skip"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_clean_drives_keep_up(scenario: str) -> None:
    result = run(clean_drive(scenario), [StageTiming()])
    assert problems(result.results["stage_timing"]) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"budget_ns": 0}, {"budget_ns": -5}, {"percentile": 0}, {"percentile": 101}],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(BagscopeError, match=next(iter(kwargs))):
        StageTiming(**kwargs)  # type: ignore[arg-type]


def test_real_logs_keep_up(shared_data: Path) -> None:
    for path in real_logs(shared_data):
        topics = real_sync_topics(path)
        result = run(path, [Sleeper(0.0), StageTiming()], topics=topics)
        timing = result.results["stage_timing"]
        assert problems(timing) == [], path.name
        expected = "pass" if topics else "skip"
        assert {c.status for c in timing.checks} == {expected}, path.name
