"""The viewer's frame source, without a window: order, seeking, read-ahead bound, shutdown."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from bagscope.pipeline.session import auto_sync, truth_topics
from bagscope.replay.log import open_log
from bagscope.viz.playback import FrameSource, setup_stages

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from bagscope.replay.log import Log


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    path = tmp_path_factory.mktemp("sim") / "drive.mcap"
    scenario = make_scenario(
        "urban", seed=3, duration_ns=1_500_000_000, beams=16, camera_size=(320, 180)
    )
    simulate(path, scenario=scenario)
    return path


@pytest.fixture
def log(drive: Path) -> Iterator[Log]:
    with open_log(drive) as opened:
        yield opened


def _source(log: Log, **kwargs: Any) -> FrameSource:
    sync = auto_sync(log, also=truth_topics(log))
    assert sync is not None
    return FrameSource(log, sync, **kwargs)


def _all(source: FrameSource) -> list[int]:
    times = []
    while (played := source.get(timeout=30)) is not None:
        times.append(played.frame.t_ns)
    return times


def test_frames_come_in_order_and_match_a_plain_read(log: Log) -> None:
    from bagscope.pipeline.session import sync_policy

    with _source(log) as source:
        times = _all(source)
        assert source.ended
        assert source.get() is None  # stays at the end until a seek
    sync = auto_sync(log, also=truth_topics(log))
    policy = sync_policy(log, sync)
    assert policy is not None
    plain = [f.t_ns for f in log.frames(policy)]
    assert times == plain
    assert len(times) >= 10
    assert times == sorted(times)


def test_seek_lands_on_the_first_frame_at_or_after_the_time(log: Log) -> None:
    with _source(log) as source:
        times = _all(source)
        for target in (times[5], times[5] - 1, times[5] + 1, times[0] - 10**9):
            source.seek(target)
            played = source.get(timeout=30)
            assert played is not None
            expected = min(t for t in times if t >= target)
            assert played.frame.t_ns == expected, target
        source.seek(times[-1] + 1)
        assert source.get(timeout=30) is None


def test_read_ahead_is_bounded(log: Log) -> None:
    with _source(log, read_ahead=2) as source:
        source.start()
        time.sleep(1.5)  # plenty of time to read the whole 1.5 s drive if unbounded
        assert source.queued <= 2
        first = source.get(timeout=30)
        assert first is not None
        assert first.frame.index == 0


def test_close_joins_the_reader_thread(log: Log) -> None:
    source = _source(log, read_ahead=1)
    source.start()
    thread = source.thread
    assert thread is not None
    assert thread.is_alive()  # blocked on a full queue
    source.close()
    assert not thread.is_alive()
    source.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        source.seek(0)


def test_a_seek_replaces_the_reader(log: Log) -> None:
    with _source(log, read_ahead=1) as source:
        source.start()
        old = source.thread
        source.seek(log.info().start_ns)
        assert old is not None
        assert not old.is_alive()
        assert source.thread is not old


class _Counter:
    """A frame stage: counts the points of the first cloud; raises on odd frames."""

    name = "counter"

    def __init__(self) -> None:
        self.set_up = False

    def setup(self, context: Any) -> None:
        self.set_up = True

    def process(self, frame: Any) -> int:
        if frame.index % 2:
            msg = "odd frame"
            raise ValueError(msg)
        return len(next(iter(frame.clouds.values())).xyz)

    def finish(self) -> Any:
        from bagscope.pipeline.stage import StageResult

        return StageResult()


def test_stages_run_on_each_frame_and_their_errors_are_kept(log: Log) -> None:
    stage = _Counter()
    sync = auto_sync(log, also=truth_topics(log))
    assert sync is not None
    setup_stages(log, [stage], sync=sync)
    assert stage.set_up
    with FrameSource(log, sync, stages=[stage]) as source:
        even = source.get(timeout=30)
        odd = source.get(timeout=30)
    assert even is not None
    assert odd is not None
    assert even.frame.outputs["counter"] > 0
    assert "counter" in even.timings_ms
    assert "counter" not in odd.frame.outputs
    assert odd.errors["counter"] == "ValueError: odd frame"


def test_a_reader_error_reaches_the_consumer(log: Log) -> None:
    from bagscope.pipeline.config import SyncConfig

    bad = SyncConfig(topics=("/lidar/points", "/no/such/topic"), policy="nearest")
    with FrameSource(log, bad) as source, pytest.raises(Exception, match="no/such/topic"):
        source.get(timeout=30)
