"""The ``replay`` command line through typer's CliRunner: exit codes and what it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bagscope.cli import app
from tests.logwriter import CAMERA, LIDAR, T0

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_info_json_matches_the_log(camera_lidar_logs: dict[str, Path]) -> None:
    code, stdout, _ = invoke("info", str(camera_lidar_logs["mcap"]), "--json")
    assert code == 0
    data = json.loads(stdout)
    assert data["start_ns"] == T0
    assert data["message_count"] == 121
    assert data["duration_ns"] == data["end_ns"] - data["start_ns"]
    topics = {t["name"]: t for t in data["topics"]}
    assert topics[LIDAR]["count"] == 10
    assert topics[LIDAR]["connections"] == 1
    assert topics[LIDAR]["msgtype"] == "sensor_msgs/msg/PointCloud2"
    assert topics[LIDAR]["frequency_hz"] == pytest.approx(10, rel=0.05)


def test_info_table_shows_topics_and_gaps(camera_lidar_logs: dict[str, Path]) -> None:
    code, stdout, _ = invoke("info", str(camera_lidar_logs["bag"]))
    assert code == 0
    assert "rosbag1" in stdout
    assert LIDAR in stdout
    assert "100.0 ms" in stdout  # the lidar's gap


def test_frames_summary_and_jsonl(camera_lidar_logs: dict[str, Path]) -> None:
    log = str(camera_lidar_logs["db3"])
    code, stdout, _ = invoke(
        "frames", log, "--sync", f"{LIDAR},{CAMERA}", "--policy", "nearest", "--slop", "20ms"
    )
    assert code == 0, stdout
    assert "10 frames" in stdout
    assert "p50 3.0 ms" in stdout
    code, stdout, _ = invoke(
        "frames",
        log,
        "--sync",
        f"{LIDAR},{CAMERA}",
        "--policy",
        "nearest",
        "--jsonl",
        "--start",
        "0.5",
    )
    assert code == 0
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert [rec["t_ns"] - T0 for rec in lines] == [k * 100_000_000 for k in range(5, 10)]
    assert lines[0]["stamps_ns"][CAMERA] == lines[0]["t_ns"] + 3_000_000


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["info", "does/not/exist.bag"], "does/not/exist.bag"),
        (["frames", "{log}", "--sync", "/lidar/points,/nope"], "/nope"),
        (
            [
                "frames",
                "{log}",
                "--sync",
                f"{LIDAR},{CAMERA}",
                "--policy",
                "nearest",
                "--slop",
                "5 parsecs",
            ],
            "5 parsecs",
        ),
        (["frames", "{log}", "--sync", f"{LIDAR},{CAMERA}", "--policy", "bogus"], "bogus"),
        (["frames", "{log}", "--sync", f"{LIDAR},{CAMERA}", "--start", "later"], "later"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    camera_lidar_logs: dict[str, Path], args: list[str], needle: str
) -> None:
    argv = [a.format(log=camera_lidar_logs["mcap"]) for a in args]
    code, stdout, stderr = invoke(*argv)
    assert code == 2
    assert needle in stderr
    assert stderr.strip().count("\n") == 0
    assert "Traceback" not in stdout + stderr


def test_not_a_log(tmp_path: Path) -> None:
    for name, content in [("empty.bag", b""), ("noise.mcap", bytes(range(256)) * 8)]:
        path = tmp_path / name
        path.write_bytes(content)
        code, _, stderr = invoke("info", str(path))
        assert code == 2
        assert str(path) in stderr or name in stderr


def test_help_starts_without_heavy_imports() -> None:
    code = (
        "import sys, bagscope.cli as c\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(c.app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('open3d', 'matplotlib', 'rosbags') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bagscope", "--help"], capture_output=True, text=True, check=True
    )
    assert "frames" in result.stdout


def _truncated_copy(log_dir: Path, tmp_path: Path) -> Path:
    (source,) = log_dir.glob("*.mcap")
    data = source.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    return cut


def test_cut_off_log_is_read_with_a_warning_or_refused_with_strict(
    camera_lidar_logs: dict[str, Path], tmp_path: Path
) -> None:
    cut = _truncated_copy(camera_lidar_logs["mcap"], tmp_path)
    code, stdout, stderr = invoke("info", str(cut))
    assert code == 0
    assert "Incomplete" in stdout
    assert "warning:" in stderr
    code, stdout, _ = invoke("info", str(cut), "--json")
    assert code == 0
    data = json.loads(stdout)
    assert data["complete"] is False
    assert 0 < data["message_count"] < 121
    code, _, stderr = invoke("info", str(cut), "--strict")
    assert code == 2
    assert stderr.strip().count("\n") == 0


def test_bag_without_messages_reports_an_empty_log(tmp_path: Path) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    from tests.logwriter import ROS2

    path = tmp_path / "empty_mcap"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection(LIDAR, "sensor_msgs/msg/PointCloud2", typestore=ROS2)
    code, stdout, _ = invoke("info", str(path), "--json")
    assert code == 0
    data = json.loads(stdout)
    assert data["message_count"] == 0
    assert data["topics"][0]["count"] == 0
    code, stdout, _ = invoke(
        "frames", str(path), "--sync", f"{LIDAR},{LIDAR}2", "--policy", "exact"
    )
    assert code == 2  # the second topic is not in the log


def test_corrupt_payload_counts_show_in_the_summary(tmp_path: Path) -> None:
    from tests.logwriter import write_log
    from tests.replay.test_log import _corrupt_cloud_spec

    path = write_log(tmp_path / "corrupt", _corrupt_cloud_spec(), "bag")
    args = ["frames", str(path), "--sync", f"{LIDAR},{CAMERA}", "--policy", "nearest"]
    code, stdout, _ = invoke(*args)
    assert code == 0
    assert "1 corrupt" in stdout
    code, _, stderr = invoke(*args, "--strict")
    assert code == 2
    assert "point" in stderr


def test_stamp_source_per_topic(camera_lidar_logs: dict[str, Path]) -> None:
    log = str(camera_lidar_logs["mcap"])
    base = ["frames", log, "--sync", f"{LIDAR},{CAMERA}", "--policy", "nearest", "--jsonl"]
    code, stdout, _ = invoke(*base, "--stamp", f"{CAMERA}=log")
    assert code == 0
    first = json.loads(stdout.splitlines()[0])
    # The camera is now timed by its log time: 3 ms offset + 2 ms latency after the sweep.
    assert first["stamps_ns"][CAMERA] - first["t_ns"] == 5_000_000
    code, _, stderr = invoke(*base, "--stamp", f"{CAMERA}=receive")
    assert code == 2
    assert "receive" in stderr


def test_reading_path_never_loads_the_visualisation_stack(
    camera_lidar_logs: dict[str, Path],
) -> None:
    code = (
        "import sys, bagscope.cli as c\n"
        "from typer.testing import CliRunner\n"
        f"for args in (['info', {str(camera_lidar_logs['mcap'])!r}],\n"
        f"             ['frames', {str(camera_lidar_logs['mcap'])!r}, '--sync', "
        f"'{LIDAR},{CAMERA}']):\n"
        "    r = CliRunner().invoke(c.app, args)\n"
        "    assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('open3d', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_typestore_is_a_user_error(camera_lidar_logs: dict[str, Path]) -> None:
    code, _, stderr = invoke("info", str(camera_lidar_logs["mcap"]), "--typestore", "rolling-x")
    assert code == 2
    assert "rolling-x" in stderr
    assert "humble" in stderr  # the choices are listed
