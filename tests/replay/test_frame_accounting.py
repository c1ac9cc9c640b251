"""What became of every message of a synced topic, and why few frames came out.

Each log is written with rosbags' own writers from `tests.logwriter.camera_lidar_spec`: a
10 Hz lidar stamped at exact 100 ms multiples from T0 and a 30 Hz JPEG camera stamped 3 ms
after its 33.3 ms grid, every message logged 2 ms after its stamp; tests then cut, corrupt or
re-stamp single messages, so every expected count below is worked out by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from bagscope import open_log
from bagscope.replay.errors import DecodeError
from bagscope.replay.framing import near_frames
from bagscope.replay.sync import ApproximateTimeSync, ExactTimeSync, NearestSync
from tests.logwriter import CAMERA, LIDAR, T0, LogSpec, camera_lidar_spec, jpeg, write_log

if TYPE_CHECKING:
    from pathlib import Path

    from bagscope.replay.framing import FrameStats

MS = 1_000_000
RGB = np.full((24, 32, 3), (200, 30, 30), dtype=np.uint8)


def fate(stats: FrameStats) -> dict[str, tuple[int, int, int, int, int]]:
    """Per topic: (messages, used, not needed, dropped, decode errors)."""
    rows = stats.to_json()["topics"]
    keys = ("messages", "used", "not_needed", "dropped", "decode_errors")
    return {topic: tuple(row[k] for k in keys) for topic, row in rows.items()}  # type: ignore[misc]


def camera_stamp(i: int) -> int:
    return T0 + 3 * MS + round(i * 1e9 / 30)


def replay(path: Path, policy: Any, **kwargs: Any) -> FrameStats:
    with open_log(path) as log:
        stream = log.frames(policy, **kwargs)
        for _ in stream:
            pass
    return stream.stats


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_log(tmp_path_factory.mktemp("plain") / "log", camera_lidar_spec(), "mcap")


@pytest.mark.parametrize(
    "policy",
    [
        NearestSync(LIDAR, [CAMERA], slop=50 * MS),
        ApproximateTimeSync([LIDAR, CAMERA]),
    ],
    ids=["nearest", "approximate"],
)
def test_a_faster_camera_is_not_needed_not_dropped(plain: Path, policy: Any) -> None:
    stats = replay(plain, policy)
    assert stats.frames == 10
    # 30 images for 10 sweeps: 20 lose to the image 3 ms from a sweep, and that is no loss.
    assert fate(stats) == {LIDAR: (10, 10, 0, 0, 0), CAMERA: (30, 10, 20, 0, 0)}
    assert stats.reasons == []


def _without_camera(spec: LogSpec, first: int, last: int) -> LogSpec:
    """Drop camera images ``first..last`` (and their CameraInfo): a camera outage."""
    gone = {camera_stamp(i) + 2 * MS for i in range(first, last + 1)}
    spec.entries = [
        e
        for e in spec.entries
        if not (e.topic in (CAMERA, "/camera/camera_info") and e.log_time_ns in gone)
    ]
    return spec


def test_an_outage_drops_the_references_it_leaves_alone(tmp_path: Path) -> None:
    # Images 10..20 (stamps 336..670 ms) are missing: sweeps 0.4, 0.5 and 0.6 s have no image
    # within 50 ms (the nearest are 303 and 703 ms away at best: 97 ms, 103 ms).
    path = write_log(tmp_path / "outage", _without_camera(camera_lidar_spec(), 10, 20), "db3")
    stats = replay(path, NearestSync(LIDAR, [CAMERA], slop=50 * MS))
    assert stats.frames == 7
    assert fate(stats) == {LIDAR: (10, 7, 0, 3, 0), CAMERA: (19, 7, 12, 0, 0)}
    assert stats.reasons == []  # 3 of 10 is a loss, not "most"


def test_approximate_counts_a_stretch_without_frames_as_dropped(tmp_path: Path) -> None:
    # Same outage, ROS ApproximateTime with a 20 ms slop: no set holds sweeps 0.4..0.6 s.
    path = write_log(tmp_path / "outage", _without_camera(camera_lidar_spec(), 10, 20), "bag")
    stats = replay(path, ApproximateTimeSync([LIDAR, CAMERA], max_interval=20 * MS))
    assert stats.frames == 7
    # The images 303 and 703 ms border the gap: passed over (sweeps 0.3 and 0.7 s took the
    # images 3 ms after them) but next to frames, so not needed; the sweeps inside it: dropped.
    assert fate(stats) == {LIDAR: (10, 7, 0, 3, 0), CAMERA: (19, 7, 12, 0, 0)}


def _corrupt_images(spec: LogSpec, indexes: set[int]) -> LogSpec:
    """Cut the JPEGs of the given camera images in half, as a recorder losing data would."""

    def cut(stamp: int) -> Any:
        def build(ts: Any) -> Any:
            msg = jpeg(ts, stamp, RGB)
            msg.data = msg.data[: len(msg.data) // 2]
            return msg

        return build

    for i in indexes:
        log_time = camera_stamp(i) + 2 * MS
        for entry in spec.entries:
            if entry.topic == CAMERA and entry.log_time_ns == log_time:
                entry.build = cut(camera_stamp(i))
    return spec


def test_a_corrupt_image_is_a_decode_error_even_when_no_frame_wants_it(tmp_path: Path) -> None:
    # Image 1 (36 ms) is never any sweep's nearest; image 3 (103 ms) would be sweep 0.1 s's.
    path = write_log(tmp_path / "corrupt", _corrupt_images(camera_lidar_spec(), {1, 3}), "mcap")
    stats = replay(path, NearestSync(LIDAR, [CAMERA], slop=50 * MS))
    # Sweep 0.1 s takes image 4 (136 ms, 36 ms away) instead; nothing is lost.
    assert stats.frames == 10
    assert fate(stats) == {LIDAR: (10, 10, 0, 0, 0), CAMERA: (30, 10, 18, 0, 2)}
    assert stats.first_decode_error[CAMERA].startswith("corrupt JPEG compressed image")
    with pytest.raises(DecodeError, match="corrupt JPEG"):
        replay(path, NearestSync(LIDAR, [CAMERA], slop=50 * MS), strict=True)


def test_every_image_corrupt_is_the_reason(tmp_path: Path) -> None:
    path = write_log(tmp_path / "all", _corrupt_images(camera_lidar_spec(), set(range(30))), "db3")
    stats = replay(path, NearestSync(LIDAR, [CAMERA], slop=50 * MS))
    assert stats.frames == 0
    assert fate(stats) == {LIDAR: (10, 0, 0, 10, 0), CAMERA: (30, 0, 0, 0, 30)}
    assert stats.skew_percentiles() == {"p50": None, "p95": None, "max": None}
    assert len(stats.reasons) == 1
    assert stats.reasons[0].startswith(f"30 of 30 messages on {CAMERA} failed to decode (first: ")


def test_exact_stamps_that_never_coincide(plain: Path) -> None:
    stats = replay(plain, ExactTimeSync([LIDAR, CAMERA]))
    assert stats.frames == 0
    assert fate(stats) == {LIDAR: (10, 0, 0, 10, 0), CAMERA: (30, 0, 0, 30, 0)}
    assert stats.reasons == [
        "exact policy: stamps never coincide (closest 3.0 ms apart) — try --policy approximate"
    ]


def test_nearest_slop_tighter_than_any_pair(plain: Path) -> None:
    stats = replay(plain, NearestSync(LIDAR, [CAMERA], slop=2 * MS))
    assert stats.frames == 0
    assert fate(stats) == {LIDAR: (10, 0, 0, 10, 0), CAMERA: (30, 0, 0, 30, 0)}
    assert stats.reasons == [
        f"nearest {CAMERA} was 3.0 ms from any {LIDAR} (slop 2.0 ms); widen --slop"
    ]


def test_approximate_slop_tighter_than_any_pair(plain: Path) -> None:
    stats = replay(plain, ApproximateTimeSync([LIDAR, CAMERA], max_interval=1 * MS))
    assert stats.frames == 0
    assert stats.reasons == [
        f"closest {LIDAR} and {CAMERA} stamps are 3.0 ms apart, wider than the slop 1.0 ms"
    ]


def test_different_clocks(tmp_path: Path) -> None:
    # The camera stamps with time since boot (5 s), the lidar with the epoch (2023).
    spec = camera_lidar_spec()
    for entry in spec.entries:
        if entry.topic == CAMERA:
            boot = entry.log_time_ns - 2 * MS - T0 + 5_000_000_000
            entry.build = lambda ts, s=boot: jpeg(ts, s, RGB)
    path = write_log(tmp_path / "clocks", spec, "mcap")
    stats = replay(path, NearestSync(LIDAR, [CAMERA], slop=50 * MS))
    assert stats.frames == 0
    assert stats.reasons == [
        f"{LIDAR} and {CAMERA} stamps are 54 years apart: different clocks; try --stamp log"
    ]
    by_log_time = replay(path, NearestSync(LIDAR, [CAMERA], slop=50 * MS), stamp_source="log")
    assert by_log_time.frames == 10
    assert by_log_time.reasons == []


def test_a_window_without_messages(plain: Path) -> None:
    # The log has no message logged after 0.982 s; the window's start is inside the log.
    stats = replay(plain, NearestSync(LIDAR, [CAMERA], slop=50 * MS), start=T0 + 981 * MS)
    assert stats.frames == 0
    assert stats.reasons == [
        f"{LIDAR} has no messages in this window",
        f"{CAMERA} has no messages in this window",
    ]


def test_queue_overflow_is_a_loss_with_its_reason(tmp_path: Path) -> None:
    # The camera's messages are all logged a second late (a lagging driver): with room for
    # only 3 sweeps the lidar overflows while the images it needs are still on their way.
    spec = camera_lidar_spec()
    for entry in spec.entries:
        if entry.topic == CAMERA:
            entry.log_time_ns += 1_000_000_000
    path = write_log(tmp_path / "lag", spec, "mcap")
    stats = replay(path, ApproximateTimeSync([LIDAR, CAMERA], queue_size=3))
    used, _, dropped = stats.used[LIDAR], stats.not_needed[LIDAR], stats.dropped[LIDAR]
    assert (used, dropped) == (3, 7)
    assert (
        f"7 messages on {LIDAR} overflowed the queue (--queue-size 3); a partner topic lags "
        "behind it"
    ) in stats.reasons


def test_near_frames_rule() -> None:
    frames = np.array([0, 100, 200, 500, 600], dtype=np.int64)  # 100 ms rhythm, one gap
    stamps = np.array([-100, -150, 50, 150, 350, 650, 700, 701], dtype=np.int64)
    assert near_frames(stamps, frames).tolist() == [
        True,
        False,
        True,
        True,
        False,
        True,
        True,
        False,
    ]
    assert near_frames(stamps, np.empty(0, dtype=np.int64)).tolist() == [False] * 8
    assert near_frames(stamps, frames[:1]).all()
