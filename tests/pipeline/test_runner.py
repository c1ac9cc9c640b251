"""The runner on real logs: one read, messages and frames to the right stages, outputs passed
on, errors isolated, timings kept, Ctrl-C keeps what was seen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from bagscope.pipeline.runner import MAX_ERRORS_KEPT, StageFailedError, run_stages
from bagscope.pipeline.stage import (
    Event,
    FrameStage,
    MessageStage,
    NeedsSetup,
    RunContext,
    Stage,
    StageResult,
)
from bagscope.replay.log import open_log
from bagscope.replay.sync import make_policy
from tests.logwriter import CAMERA, LIDAR

if TYPE_CHECKING:
    from pathlib import Path

    from bagscope.replay.frame import Frame
    from bagscope.replay.message import Message

T0 = 1_700_000_000_000_000_000
LATENCY = 2_000_000


class Counter:
    """Counts messages per topic and frames; asks for the topics it is given."""

    def __init__(self, name: str, topics: tuple[str, ...]) -> None:
        self.name = name
        self._topics = topics
        self.seen: list[tuple[str, int]] = []
        self.frames: list[int] = []
        self.context: RunContext | None = None

    def setup(self, context: RunContext) -> None:
        self.context = context

    @property
    def message_topics(self) -> tuple[str, ...]:
        return self._topics

    def on_message(self, msg: Message) -> None:
        self.seen.append((msg.topic, msg.log_time_ns))

    def process(self, frame: Frame) -> dict[str, int]:
        self.frames.append(frame.t_ns)
        return {"index": frame.index}

    def finish(self) -> StageResult:
        result = StageResult()
        result.metrics.add("messages", len(self.seen))
        result.events.append(
            Event(t_ns=T0, end_ns=T0, topic=None, kind="note", severity="info", message="done")
        )
        return result


class Reader:
    """Reads the outputs of the stage before it."""

    name = "reader"

    def __init__(self) -> None:
        self.got: list[Any] = []

    def process(self, frame: Frame) -> None:
        self.got.append(frame.outputs.get("counter"))

    def finish(self) -> StageResult:
        return StageResult()


class Flaky:
    """Raises on the frame with index ``bad``."""

    name = "flaky"

    def __init__(self, bad: int, exc: type[BaseException] = ValueError) -> None:
        self.bad = bad
        self.exc = exc
        self.calls = 0

    def process(self, frame: Frame) -> None:
        self.calls += 1
        if frame.index == self.bad:
            raise self.exc("boom")

    def finish(self) -> StageResult:
        return StageResult()


def test_the_protocols_say_what_a_stage_can_do() -> None:
    counter = Counter("c", ())
    assert isinstance(counter, Stage)
    assert isinstance(counter, NeedsSetup)
    assert isinstance(counter, MessageStage)
    assert isinstance(counter, FrameStage)
    assert not isinstance(Reader(), MessageStage)
    assert isinstance(Reader(), FrameStage)


def test_message_stages_see_every_message_of_their_topics_in_log_order(
    camera_lidar_logs: dict[str, Path],
) -> None:
    for path in camera_lidar_logs.values():
        stage = Counter("counter", ("/tf", LIDAR))
        with open_log(path) as log:
            result = run_stages(log, [stage])
        topics = [t for t, _ in stage.seen]
        assert topics.count(LIDAR) == 10
        assert topics.count("/tf") == 50
        assert set(topics) == {"/tf", LIDAR}
        times = [t for _, t in stage.seen]
        assert times == sorted(times)
        assert result.messages == 60
        assert result.frames == 0
        assert result.frame_stats is None
        assert result.results["counter"].metrics.value("messages") == 60
        assert result.results["counter"].events[0].stage == "counter"


def test_frames_and_messages_share_one_read_and_outputs_pass_on(
    camera_lidar_logs: dict[str, Path],
) -> None:
    counter = Counter("counter", ("/tf",))
    reader = Reader()
    with open_log(camera_lidar_logs["mcap"]) as log:
        policy = make_policy("nearest", [LIDAR, CAMERA], slop_ns=20_000_000)
        result = run_stages(log, [counter, reader], sync=policy)
    assert counter.frames == [T0 + i * 100_000_000 for i in range(10)]
    assert reader.got == [{"index": i} for i in range(10)]
    assert [t for t, _ in counter.seen] == ["/tf"] * 50
    # the message stage's topic plus the synced topics and the camera info, read once
    assert result.messages == 50 + 10 + 30 + 30
    assert result.frames == 10
    assert counter.context is not None
    assert counter.context.sync_topics == (LIDAR, CAMERA)
    assert result.timings.period_ns == 100_000_000
    assert len(result.timings.frames["counter"]) == 10
    assert len(result.timings.frames["reader"]) == 10
    assert result.timings.message_calls["counter"] == 50
    assert result.frame_stats is not None
    assert result.frame_stats.frames == 10


def test_a_stage_that_raises_is_recorded_and_the_run_goes_on(
    camera_lidar_logs: dict[str, Path],
) -> None:
    flaky = Flaky(bad=3)
    reader = Reader()
    with open_log(camera_lidar_logs["bag"]) as log:
        policy = make_policy("nearest", [LIDAR, CAMERA], slop_ns=20_000_000)
        result = run_stages(log, [flaky, reader], sync=policy)
    assert flaky.calls == 10
    assert len(reader.got) == 10
    assert result.complete
    (error,) = result.errors
    assert (error.stage, error.phase, error.t_ns) == ("flaky", "frame", T0 + 300_000_000)
    assert error.error == "ValueError: boom"
    assert "Traceback" in error.traceback
    assert result.error_counts == {"flaky": 1}


def test_fail_fast_stops_at_the_first_stage_error(camera_lidar_logs: dict[str, Path]) -> None:
    with open_log(camera_lidar_logs["mcap"]) as log:
        policy = make_policy("nearest", [LIDAR, CAMERA], slop_ns=20_000_000)
        with pytest.raises(StageFailedError) as info:
            run_stages(log, [Flaky(bad=2)], sync=policy, fail_fast=True)
    assert str(info.value) == (
        f"stage 'flaky' failed in frame at log time {T0 + 200_000_000}: ValueError: boom"
    )


def test_a_stage_failing_on_every_message_keeps_only_the_first_errors(
    camera_lidar_logs: dict[str, Path],
) -> None:
    class Broken(Counter):
        def on_message(self, msg: Message) -> None:
            raise RuntimeError(msg.topic)

    with open_log(camera_lidar_logs["mcap"]) as log:
        result = run_stages(log, [Broken("broken", ("/tf",))])
    assert len(result.errors) == MAX_ERRORS_KEPT
    assert result.error_counts == {"broken": MAX_ERRORS_KEPT}
    assert result.errors[0].error == "RuntimeError: /tf"


def test_ctrl_c_keeps_what_was_seen_and_still_finishes(
    camera_lidar_logs: dict[str, Path],
) -> None:
    counter = Counter("counter", ())
    with open_log(camera_lidar_logs["db3"]) as log:
        policy = make_policy("nearest", [LIDAR, CAMERA], slop_ns=20_000_000)
        result = run_stages(log, [counter, Flaky(bad=4, exc=KeyboardInterrupt)], sync=policy)
    assert result.interrupted
    assert not result.complete
    assert result.frames == 5
    assert len(counter.frames) == 5
    assert result.results["counter"].events[0].message == "done"
    assert result.frame_stats is not None


def test_two_stages_with_one_name_are_refused(camera_lidar_logs: dict[str, Path]) -> None:
    from bagscope.errors import BagscopeError

    with open_log(camera_lidar_logs["mcap"]) as log, pytest.raises(BagscopeError) as info:
        run_stages(log, [Counter("x", ()), Counter("x", ())])
    assert str(info.value) == "two stages are named 'x'; give one of them another name"


def test_a_window_limits_what_the_stages_see(camera_lidar_logs: dict[str, Path]) -> None:
    stage = Counter("counter", (LIDAR,))
    with open_log(camera_lidar_logs["mcap"]) as log:
        run_stages(log, [stage], start_ns=T0 + 200_000_000, end_ns=T0 + 500_000_000)
    assert [t for _, t in stage.seen] == [T0 + k * 100_000_000 + LATENCY for k in (2, 3, 4)]
