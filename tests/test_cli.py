"""The ``replay`` command line through typer's CliRunner: exit codes and what it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import bagscope
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
    code, stdout, _ = invoke("info", str(path))
    assert code == 0
    for line in ("Duration:  -", "Start:     -", "End:       -", "Messages:  0"):
        assert line in stdout.splitlines()  # no 1970 extent for a log with nothing in it
    code, stdout, _ = invoke("frames", str(path), "--sync", f"{LIDAR},{LIDAR}")
    assert code == 2  # listed twice
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


# ---------------------------------------------------------------------------------------------
# One honest set of numbers
# ---------------------------------------------------------------------------------------------


def test_one_rate_in_the_table_the_json_and_without_gaps(
    camera_lidar_logs: dict[str, Path],
) -> None:
    log = str(camera_lidar_logs["bag"])
    _, table, _ = invoke("info", log)
    _, quick, _ = invoke("info", log, "--no-gaps")
    _, as_json, _ = invoke("info", log, "--json")
    _, quick_json, _ = invoke("info", log, "--json", "--no-gaps")
    topics = {t["name"]: t for t in json.loads(as_json)["topics"]}
    lidar = topics[LIDAR]
    # Sweeps stamped 0.0 .. 0.9 s, logged 2 ms late: 9 intervals over its own 0.9 s.
    assert lidar["frequency_hz"] == 10.0
    assert (lidar["first_ns"], lidar["last_ns"]) == (T0 + 2_000_000, T0 + 902_000_000)
    assert (lidar["max_gap_ns"], lidar["max_gap_start_ns"]) == (100_000_000, T0 + 2_000_000)
    camera = topics[CAMERA]
    assert camera["frequency_hz"] == 29 * 1e9 / 966_666_667  # 29 intervals of 1/30 s
    assert topics["/tf_static"]["frequency_hz"] is None
    quick_topics = {t["name"]: t for t in json.loads(quick_json)["topics"]}
    assert "max_gap_ns" not in quick_topics[LIDAR]
    for name, topic in topics.items():
        for key in ("count", "frequency_hz", "first_ns", "last_ns"):
            assert quick_topics[name][key] == topic[key], (name, key)
    for text in (table, quick):
        row = next(line for line in text.splitlines() if line.startswith(f" {LIDAR} "))
        assert "10.00 Hz" in row
        row = next(line for line in text.splitlines() if line.startswith(f" {CAMERA} "))
        assert "30.00 Hz" in row
    assert "Max gap" in table
    assert "Max gap" not in quick


def test_real_log_rates_and_times_agree(shared_data: Path) -> None:
    bag = str(shared_data / "ros1/turtlesim_lz4.bag")
    _, table, _ = invoke("info", bag)
    _, as_json, _ = invoke("info", bag, "--json")
    rosout = next(t for t in json.loads(as_json)["topics"] if t["name"] == "/rosout")
    assert f"{rosout['frequency_hz']:.2f}" == "44.76"  # 10 messages over its own 201 ms
    row = next(line for line in table.splitlines() if line.startswith(" /rosout "))
    assert "44.76 Hz" in row
    _, table, _ = invoke("info", str(shared_data / "ros2/cdr_test_sqlite3"))
    # ros2 bag info prints these exact stamps; a float would have rounded the last digits.
    assert "Start:     2020-04-09 04:27:36.763Z (1586406456.763032325)" in table
    assert "End:       2020-04-09 04:27:36.914Z (1586406456.914169506)" in table


def test_frames_json_accounts_for_every_message(camera_lidar_logs: dict[str, Path]) -> None:
    args = ["frames", str(camera_lidar_logs["mcap"]), "--sync", f"{LIDAR},{CAMERA}"]
    code, stdout, _ = invoke(*args, "--policy", "nearest", "--json")
    assert code == 0
    assert json.loads(stdout) == {
        "frames": 10,
        "topics": {
            LIDAR: {"messages": 10, "used": 10, "not_needed": 0, "dropped": 0, "decode_errors": 0},
            CAMERA: {
                "messages": 30,
                "used": 10,
                "not_needed": 20,
                "dropped": 0,
                "decode_errors": 0,
            },
        },
        "skew_ns": {"p50": 3_000_000, "p95": 3_000_000, "max": 3_000_000},
        "reasons": [],
    }
    code, stdout, _ = invoke(*args, "--policy", "nearest")
    assert code == 0
    row = next(line for line in stdout.splitlines() if line.startswith(f" {CAMERA} "))
    assert [cell.strip() for cell in row.split("│")] == [CAMERA, "30", "10", "20", "0", "0"]


def test_no_frames_prints_dashes_and_the_reason(camera_lidar_logs: dict[str, Path]) -> None:
    log = str(camera_lidar_logs["db3"])
    code, stdout, _ = invoke("frames", log, "--sync", f"{LIDAR},{CAMERA}", "--policy", "exact")
    assert code == 0
    assert "0 frames · skew p50 -, p95 -, max -" in stdout
    assert (
        "why: exact policy: stamps never coincide (closest 3.0 ms apart) — try --policy "
        "approximate" in stdout
    )


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (["--start", "0.8", "--end", "0.2"], "--start 0.8 is not before --end 0.2"),
        (["--start", "-1"], "--start -1 is negative"),
        (["--start", "5s"], "--start 5s is after the log ends"),
        (["--end", "1586406456"], "--end 1586406456 is before the log starts"),
    ],
)
def test_impossible_windows_name_the_log_extent(
    camera_lidar_logs: dict[str, Path], window: list[str], message: str
) -> None:
    log = str(camera_lidar_logs["mcap"])
    code, _, stderr = invoke("frames", log, "--sync", f"{LIDAR},{CAMERA}", *window)
    assert code == 2
    assert stderr == (
        f"error: {message}; the log runs from 0 s to 982.0 ms "
        "(1700000000.000000000 .. 1700000000.982000000)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--queue-size", "0"], "--queue-size must be at least 1, not 0"),
        (["--slop", "-5ms"], "--slop must not be negative, not -5ms"),
        (["--policy", "exact", "--slop", "5ms"], "--slop does not apply to --policy exact"),
        (["--rate", "0"], "--rate must be positive, not 0.0"),
    ],
)
def test_option_errors_speak_of_options(
    camera_lidar_logs: dict[str, Path], args: list[str], message: str
) -> None:
    log = str(camera_lidar_logs["mcap"])
    code, _, stderr = invoke("frames", log, "--sync", f"{LIDAR},{CAMERA}", *args)
    assert code == 2
    assert stderr.startswith(f"error: {message}")
    assert stderr.count("\n") == 1


def test_the_cli_default_queue_size_is_the_library_default() -> None:
    from bagscope.commands.frames import DEFAULT_QUEUE_SIZE as CLI_DEFAULT
    from bagscope.replay.sync import DEFAULT_QUEUE_SIZE, ApproximateTimeSync, NearestSync

    assert CLI_DEFAULT == DEFAULT_QUEUE_SIZE == 100
    assert ApproximateTimeSync(["a", "b"]).queue_size == DEFAULT_QUEUE_SIZE
    assert NearestSync("a", ["b"], slop=0).queue_size == DEFAULT_QUEUE_SIZE


# ---------------------------------------------------------------------------------------------
# Topic names exactly as recorded
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unslashed_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ROS1 bag whose driver named its topics without the leading slash."""
    from tests.logwriter import LogSpec, camera_info, jpeg, write_log

    spec = LogSpec()
    rgb = np.full((24, 32, 3), 128, dtype=np.uint8)
    for i in range(5):
        stamp = T0 + i * 100_000_000
        spec.add(
            "raspicam_node/image/compressed",
            "sensor_msgs/msg/CompressedImage",
            stamp,
            lambda ts, s=stamp: jpeg(ts, s, rgb),
        )
        spec.add(
            "raspicam_node/camera_info",
            "sensor_msgs/msg/CameraInfo",
            stamp + 1,
            lambda ts, s=stamp: camera_info(ts, s, 32, 24),
        )
    return write_log(tmp_path_factory.mktemp("unslashed") / "raspicam.bag", spec, "bag")


def test_topics_are_reported_as_recorded_and_found_either_way(unslashed_bag: Path) -> None:
    code, stdout, _ = invoke("info", str(unslashed_bag), "--json")
    assert code == 0
    names = [t["name"] for t in json.loads(stdout)["topics"]]
    assert names == ["raspicam_node/camera_info", "raspicam_node/image/compressed"]
    _, table, _ = invoke("info", str(unslashed_bag))
    assert " raspicam_node/image/compressed " in table
    assert "/raspicam_node" not in table
    code, stdout, _ = invoke(
        "frames",
        str(unslashed_bag),
        "--sync",
        "/raspicam_node/image/compressed,raspicam_node/camera_info",
        "--policy",
        "nearest",
        "--json",
    )
    assert code == 0
    summary = json.loads(stdout)
    assert summary["frames"] == 5
    assert list(summary["topics"]) == [
        "raspicam_node/image/compressed",
        "raspicam_node/camera_info",
    ]
    with bagscope.open_log(unslashed_bag) as log:
        assert [m.topic for m in log.messages(topics=["/raspicam_node/camera_info"])] == [
            "raspicam_node/camera_info"
        ] * 5
        # The image finds the CameraInfo beside it, spelled the same way.
        stream = log.frames(
            bagscope.NearestSync(
                "raspicam_node/image/compressed", ["raspicam_node/camera_info"], slop=1
            )
        )
        assert all("raspicam_node/image/compressed" in f.cameras for f in stream)


def test_a_close_topic_name_gets_a_did_you_mean(camera_lidar_logs: dict[str, Path]) -> None:
    log = str(camera_lidar_logs["mcap"])
    code, _, stderr = invoke("frames", log, "--sync", f"{LIDAR},/camera/image/compresed")
    assert code == 2
    assert stderr == (
        "error: topic '/camera/image/compresed' is not in the log; did you mean "
        "'/camera/image/compressed'?\n"
    )


# ---------------------------------------------------------------------------------------------
# CLI niceties and usage mistakes
# ---------------------------------------------------------------------------------------------


def test_version_and_short_help() -> None:
    code, stdout, _ = invoke("--version")
    assert (code, stdout) == (0, f"bagscope {bagscope.__version__}\n")
    for args in (["-h"], ["frames", "-h"], ["info", "-h"]):
        code, stdout, _ = invoke(*args)
        assert code == 0
        assert "Usage: replay" in stdout


@pytest.mark.parametrize("command", ["info", "frames", "simulate"])
def test_help_shows_words_not_python_types(command: str) -> None:
    code, stdout, _ = invoke(command, "--help")
    assert code == 0
    assert "<list[" not in stdout
    assert "[Path]" not in stdout
    assert "<bool>" not in stdout
    assert "<str>" not in stdout


def test_frames_help_says_approximate_has_no_limit_without_slop() -> None:
    _, stdout, _ = invoke("frames", "--help")
    assert "without --slop it has no limit" in " ".join(stdout.replace("│", " ").split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["frames", "{log}"], "Missing option '--sync'"),
        (
            ["frames", "{log}", "--sync", f"{LIDAR},{CAMERA}", "--queue-size", "ten"],
            "'--queue-size'",
        ),
        (["info"], "Missing argument 'LOG...'"),
        (["infos", "{log}"], "No such command 'infos'"),
    ],
)
def test_usage_mistakes_are_one_line(
    camera_lidar_logs: dict[str, Path], args: list[str], message: str
) -> None:
    argv = [a.format(log=camera_lidar_logs["mcap"]) for a in args]
    code, stdout, stderr = invoke(*argv)
    assert code == 2
    assert stdout == ""
    assert stderr.startswith("error: ")
    assert message in stderr
    assert stderr.count("\n") == 1
