"""``replay info --json`` on the real recorded logs agrees with ../shared/data/README.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bagscope.cli import app
from tests.replay.test_storage_realdata import EXPECTED

runner = CliRunner()


def _info(shared_data: Path, name: str) -> dict[str, object]:
    result = runner.invoke(app, ["info", str(shared_data / name), "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_info_json_agrees_with_the_readme(shared_data: Path, name: str) -> None:
    count, duration_s, topic_counts = EXPECTED[name]
    info = _info(shared_data, name)
    assert info["message_count"] == count
    assert round(info["duration_ns"] / 1e9, 3) == pytest.approx(duration_s)  # type: ignore[operator]
    topics = {t["name"]: t for t in info["topics"]}  # type: ignore[attr-defined]
    for topic, n in topic_counts.items():
        assert topics[topic]["count"] == n


def test_cdr_test_matches_ros2_bag_info(shared_data: Path) -> None:
    # rosbag2's own end-to-end test prints these exact figures for this recording.
    for name in ("ros2/cdr_test_sqlite3", "ros2/cdr_test_mcap"):
        info = _info(shared_data, name)
        assert info["start_ns"] == 1586406456763032325
        assert info["end_ns"] == 1586406456914169506
        assert info["duration_ns"] == 151137181


def test_two_connections_on_one_topic(shared_data: Path) -> None:
    info = _info(shared_data, "ros1/sick_lms1xx_rms_radar.bag")
    diagnostics = next(t for t in info["topics"] if t["name"] == "/diagnostics")  # type: ignore[attr-defined]
    assert diagnostics["connections"] == 2
    assert diagnostics["count"] == 3


def test_frames_on_a_real_lidar_bag(shared_data: Path) -> None:
    # Real SICK lidar + radar: sync the scanner's cloud with the radar targets by header stamp.
    result = runner.invoke(
        app,
        [
            "frames",
            str(shared_data / "ros1/sick_lms1xx_rms_radar.bag"),
            "--sync",
            "/cloud,/cloud_radar_rawtarget",
            "--policy",
            "nearest",
            "--slop",
            "100ms",
            "--jsonl",
        ],
    )
    assert result.exit_code == 0, result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(frames) > 40
    for frame in frames:
        stamps = frame["stamps_ns"]
        assert abs(stamps["/cloud_radar_rawtarget"] - stamps["/cloud"]) <= 100_000_000
