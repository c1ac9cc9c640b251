"""SyncQuality: per-frame skew of each synced pair and the sync policy's losses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from bagscope.analyzers.sync_quality import SyncQuality
from bagscope.errors import BagscopeError
from tests.analyzers._drives import (
    CAMERA,
    DAMAGED_SPEC,
    LIDAR,
    SCENARIOS,
    START_NS,
    clean_drive,
    damaged_drive,
    draw_figures,
    fault,
    problems,
    real_logs,
    real_sync_topics,
    run,
    showcase_drive,
)
from tests.logwriter import T0, LogSpec, cloud, jpeg, write_log

if TYPE_CHECKING:
    from pathlib import Path

CAMERA_PHASE_NS = 7_000_000  # the simulated camera's exposure starts 7 ms after each sweep
SKEW_LIMIT_NS = 25_000_000  # 0.75 x the camera's 33.3 ms period


@pytest.mark.parametrize("policy", ["nearest", "approximate"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_clean_drives_are_in_sync(scenario: str, policy: str) -> None:
    slop = 50_000_000 if policy == "nearest" else None
    result = run(clean_drive(scenario), [SyncQuality()], policy=policy, slop_ns=slop)
    sync = result.results["sync"]
    assert problems(sync) == []
    assert sync.events == []
    # Sweeps tick at k x 100 ms and the camera at 7 ms + j x 33.3 ms: the nearest image of
    # every sweep is the one 7 ms after it.
    times, skews = sync.metrics.series("skew_ms", topic=CAMERA, label=LIDAR)
    assert len(times) == 30
    assert times == [START_NS + k * 100_000_000 for k in range(30)]
    assert skews == [CAMERA_PHASE_NS / 1e6] * 30
    assert sync.metrics.value("skew_max_ms", topic=CAMERA, label=LIDAR) == 7.0
    assert sync.metrics.value("frames") == 30
    assert sync.metrics.value("used", topic=LIDAR) == 30
    assert sync.metrics.value("dropped", topic=LIDAR) == 0
    assert sync.metrics.value("not_needed", topic=CAMERA) == 60
    checks = {(c.name, c.topic): c for c in sync.checks}
    skew_check = checks[(f"skew vs {LIDAR}", CAMERA)]
    assert skew_check.status == "pass"
    assert skew_check.threshold.startswith("<= 25.0 ms")
    assert {c.status for c in sync.checks} == {"pass"}
    assert draw_figures(sync) == 1


def _skew_log(path: Path, *, missing: set[int]) -> Path:
    """3 s of 10 Hz sweeps and a 30 Hz camera (phase 7 ms) whose image 7 ms after each sweep in
    ``missing`` was lost: those sweeps pair with the image 26.3 ms before them."""
    spec = LogSpec()
    xyz = np.zeros((8, 3), dtype=np.float32) + np.float32(1.0)
    for k in range(30):
        stamp = T0 + k * 100_000_000
        spec.add(
            LIDAR,
            "sensor_msgs/msg/PointCloud2",
            stamp + 2_000_000,
            lambda ts, s=stamp: cloud(ts, s, xyz),
        )
    rgb = np.full((24, 32, 3), 90, dtype=np.uint8)
    for j in range(90):
        if j % 3 == 0 and j // 3 in missing:
            continue
        stamp = T0 + CAMERA_PHASE_NS + round(j * 1e9 / 30)
        spec.add(
            CAMERA,
            "sensor_msgs/msg/CompressedImage",
            stamp + 3_000_000,
            lambda ts, s=stamp: jpeg(ts, s, rgb),
        )
    return write_log(path, spec, "mcap")


def test_a_stretch_of_skewed_frames_is_found(tmp_path: Path) -> None:
    # Sweeps 10-14 lose their image (a stretch of 5), sweeps 20-21 too (2: below min_stretch).
    log = _skew_log(tmp_path / "skew", missing={10, 11, 12, 13, 14, 20, 21})
    sync = run(log, [SyncQuality()]).results["sync"]
    (event,) = problems(sync)
    assert event.kind == "sync_skew"
    assert event.severity == "warning"
    assert event.topic == CAMERA
    assert event.t_ns == T0 + 10 * 100_000_000
    assert event.end_ns == T0 + 14 * 100_000_000
    assert event.evidence["frames"] == 5
    # the image before: 7 ms + round((3k - 1) x 1e9 / 30) = k x 100 ms - 26.333333 ms
    assert event.evidence["worst_skew_ns"] == -26_333_333
    assert event.evidence["limit_ns"] == SKEW_LIMIT_NS
    assert event.evidence["reference"] == LIDAR
    assert sync.metrics.value("frames_over_skew", topic=CAMERA, label=LIDAR) == 7
    check = next(c for c in sync.checks if c.name == f"skew vs {LIDAR}")
    assert check.status == "warn"


def test_a_given_skew_limit_and_stretch_length_are_used(tmp_path: Path) -> None:
    log = _skew_log(tmp_path / "skew", missing={20, 21})
    stage = SyncQuality(max_skew_ns=10_000_000, min_stretch=2)
    sync = run(log, [stage]).results["sync"]
    (event,) = problems(sync)
    assert (event.t_ns, event.end_ns) == (T0 + 2_000_000_000, T0 + 2_100_000_000)
    assert event.evidence["limit_ns"] == 10_000_000


def test_a_camera_outage_drops_sweeps() -> None:
    # The camera is silent from 3.5 s for 0.8 s: no image within 50 ms of the sweeps at
    # 3.6 ... 4.2 s, so 7 of the 80 sweeps make no frame.
    sync = run(showcase_drive(), [SyncQuality()]).results["sync"]
    (event,) = problems(sync)
    assert event.kind == "sync_dropped"
    assert event.topic == LIDAR
    assert event.evidence["dropped"] == 7
    assert event.evidence["messages"] == 80
    assert event.evidence["windows_ns"] == [[START_NS + 3_500_000_000, START_NS + 4_300_000_000]]
    assert (event.t_ns, event.end_ns) == (START_NS + 3_500_000_000, START_NS + 4_300_000_000)
    assert event.evidence["silent_topics"] == [CAMERA]
    assert "sent nothing" in event.message
    assert sync.metrics.value("frames") == 73
    assert sync.metrics.value("dropped", topic=CAMERA) == 0
    statuses = {(c.name, c.topic): c.status for c in sync.checks}
    assert statuses[("dropped by sync", LIDAR)] == "warn"
    assert statuses[("dropped by sync", CAMERA)] == "pass"
    assert statuses[(f"skew vs {LIDAR}", CAMERA)] == "pass"  # one frame at 3.5 s is 27 ms off


def test_a_corrupt_reference_leaves_the_camera_without_frames() -> None:
    log = damaged_drive()
    spec = next(s for s in DAMAGED_SPEC.split(",") if s.startswith(f"corrupt:{LIDAR}"))
    corrupt_sweeps = fault(log, spec)["count"]
    sync = run(log, [SyncQuality()]).results["sync"]
    assert sync.metrics.value("decode_errors", topic=LIDAR) == corrupt_sweeps
    assert sync.metrics.value("dropped", topic=LIDAR) == 0
    assert sync.metrics.value("frames") == 30 - corrupt_sweeps
    (event,) = problems(sync)
    assert event.kind == "sync_dropped"
    assert event.topic == CAMERA
    assert event.evidence["reference"] == LIDAR
    assert f"the reference {LIDAR} lost messages: {corrupt_sweeps} corrupt" in event.message


def test_no_frame_at_all_is_an_error(shared_data: Path) -> None:
    # The Raspberry Pi log's only image is 462 ms from every CameraInfo: with a 50 ms slop the
    # nearest policy cannot make a single frame.
    log = shared_data / "ros1" / "raspicam_aruco_compressed.bag"
    topics = ("/raspicam_node/image/compressed", "/raspicam_node/camera_info")
    sync = run(log, [SyncQuality()], topics=topics).results["sync"]
    (event,) = sync.events
    assert (event.kind, event.severity) == ("sync_no_frames", "error")
    assert event.evidence["messages"] == {topics[0]: 1, topics[1]: 15}
    assert "462.1 ms" in event.evidence["reasons"][0]
    assert {c.status for c in sync.checks} == {"fail", "skip"}
    assert draw_figures(sync) == 0


def test_without_a_sync_policy_there_is_nothing_to_judge() -> None:
    sync = run(clean_drive("urban"), [SyncQuality()], topics=None).results["sync"]
    assert sync.events == []
    assert [c.status for c in sync.checks] == ["skip"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_skew_ns": 0},
        {"skew_factor": 0},
        {"min_stretch": 0},
        {"max_dropped": 1.0},
        {"max_dropped": -0.1},
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(BagscopeError, match=next(iter(kwargs))):
        SyncQuality(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", ["nearest", "approximate"])
def test_real_logs_are_in_sync(shared_data: Path, policy: str) -> None:
    slop = 50_000_000 if policy == "nearest" else None
    for path in real_logs(shared_data):
        topics = real_sync_topics(path)
        result = run(path, [SyncQuality()], topics=topics, policy=policy, slop_ns=slop)
        sync = result.results["sync"]
        assert problems(sync) == [], path.name
        if topics is None:
            assert [c.status for c in sync.checks] == ["skip"]
        else:
            # the SICK scan and its cloud share their stamps; so do the T265's two fisheyes
            assert sync.metrics.value("skew_max_ms", topic=topics[1], label=topics[0]) == 0.0
