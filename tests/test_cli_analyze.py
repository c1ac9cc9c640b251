"""``replay analyze`` and ``replay score`` through the command line: exit codes, what they
print, the run directory they leave, and the user's mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bagscope.cli import app
from bagscope.pipeline.rundir import load_run
from bagscope.sim.config import make_scenario
from bagscope.sim.simulate import simulate

runner = CliRunner()
FAULTS = "outage:/camera/image/compressed=1s+0.5s,corrupt:/lidar/points=0.3"


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s urban drive with a camera outage and corrupt sweeps."""
    out = tmp_path_factory.mktemp("analyze") / "drive.mcap"
    scenario = make_scenario(
        "urban", seed=3, duration_ns=3_000_000_000, beams=16, camera_size=(320, 180)
    )
    return simulate(out, scenario=scenario, faults=FAULTS).log_path


def test_analyze_finds_the_faults_and_exits_0(drive: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stdout, stderr = invoke("analyze", str(drive), "--out", str(out))
    assert code == 0, stderr
    run = load_run(out)
    assert run.verdict == "fail"
    kinds = {(e.kind, e.topic) for e in run.events if e.severity != "info"}
    assert ("gap", "/camera/image/compressed") in kinds
    assert ("corrupt", "/lidar/points") in kinds
    assert run.run["stages"] == [
        "topic_health",
        "latency",
        "timestamps",
        "freeze",
        "tf",
        "sync",
        "contract",
        "pointcloud",
        "image",
        "stage_timing",
    ]
    assert run.run["frames"]["topics"]["/lidar/points"]["messages"] == 30
    assert "verdict: FAIL" in stdout
    assert f"report: {out / 'report.html'}" in stdout
    html = (out / "report.html").read_text()
    assert html.count('<img src="data:image/png;base64,') == len(run.report["figures"])
    assert len(run.report["figures"]) >= 10


def test_fail_on_turns_findings_into_exit_1(drive: Path, tmp_path: Path) -> None:
    args = ("analyze", str(drive), "--no-figures", "--only", "health")
    code, _, _ = invoke(*args, "--out", str(tmp_path / "a"), "--fail-on", "error")
    assert code == 1
    code, _, _ = invoke(*args, "--out", str(tmp_path / "b"), "--fail-on", "warning")
    assert code == 1
    run = load_run(tmp_path / "a")
    assert "pointcloud" not in run.run["stages"]
    assert "image" not in run.run["stages"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s parking drive, no faults, as a ROS1 bag."""
    out = tmp_path_factory.mktemp("analyze_clean") / "clean.bag"
    scenario = make_scenario(
        "parking", seed=4, duration_ns=2_000_000_000, beams=16, camera_size=(320, 180)
    )
    return simulate(out, scenario=scenario).log_path


def test_a_clean_log_passes_fail_on_warning(clean: Path, tmp_path: Path) -> None:
    code, stdout, stderr = invoke(
        "analyze",
        str(clean),
        "--out",
        str(tmp_path / "r"),
        "--fail-on",
        "warning",
        "--json",
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["verdict"] == "pass"
    assert report["event_counts"]["warning"] == report["event_counts"]["error"] == 0


def test_a_contract_and_thresholds_from_a_pipeline_file(drive: Path, tmp_path: Path) -> None:
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(
        '[contract."/lidar/points"]\ntype = "sensor_msgs/msg/PointCloud2"\nmin_rate_hz = 9.0\n'
        '[contract."/radar"]\ntype = "radar_msgs/msg/RadarScan"\n'
        "[thresholds.topic_health]\ngap_factor = 100.0\nerror_factor = 200.0\n"
        "outage_s = 60.0\n"
    )
    code, _, stderr = invoke(
        "analyze",
        str(drive),
        "--pipeline",
        str(pipeline),
        "--out",
        str(tmp_path / "r"),
        "--only",
        "topic_health,contract",
        "--no-figures",
    )
    assert code == 0, stderr
    run = load_run(tmp_path / "r")
    kinds = sorted((e.kind, e.topic) for e in run.events if e.severity != "info")
    # the 0.5 s outage is under 100 camera periods now: counted as missed messages, not a gap
    assert kinds == [
        ("contract_missing_topic", "/radar"),
        ("drop", "/camera/image/compressed"),
    ]


def test_the_default_run_directory_is_never_overwritten(
    camera_lidar_logs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    log = str(camera_lidar_logs["bag"])
    for _ in range(2):
        code, _, stderr = invoke("analyze", log, "--no-figures", "--only", "topic_health")
        assert code == 0, stderr
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["drive", "drive-2"]


def test_an_empty_log_is_a_warning_not_a_pass(tmp_path: Path) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    with Writer(tmp_path / "empty", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection("/imu", "sensor_msgs/msg/Imu", typestore=store)
    code, _, _ = invoke("analyze", str(tmp_path / "empty"), "--out", str(tmp_path / "r"))
    assert code == 0
    (event,) = load_run(tmp_path / "r").events
    assert (event.kind, event.severity) == ("empty_log", "warning")
    assert event.message == "no messages on any of the 1 recorded topics: nothing to analyse"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--fail-on", "fatal"), "error: --fail-on must be 'error' or 'warning', not 'fatal'"),
        (
            ("--only", "helth"),
            "error: --only: unknown analyzer 'helth'; choose from health, "
            "quality, topic_health, latency, timestamps, freeze, tf, sync, contract, pointcloud, "
            "image, stage_timing",
        ),
    ],
)
def test_bad_options_are_one_line(
    args: tuple[str, ...], message: str, camera_lidar_logs: dict[str, Path], tmp_path: Path
) -> None:
    code, _, stderr = invoke(
        "analyze", str(camera_lidar_logs["mcap"]), "--out", str(tmp_path / "r"), *args
    )
    assert (code, stderr.strip()) == (2, message)
    assert not (tmp_path / "r").exists()


def test_a_corrupt_log_is_a_recovery_warning_and_an_empty_analysis(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"\x89MCAP0\r\n" + bytes(100))
    code, stdout, stderr = invoke("analyze", str(bad), "--out", str(tmp_path / "r"))
    assert code == 0
    assert stderr.strip() == (
        "warning: bad.mcap: MCAP file has no summary/footer (cut off?); recovered 0 messages; "
        "last intact record ends 1 bytes before the end of the file"
    )
    assert "verdict: WARN" in stdout
    assert [e.kind for e in load_run(tmp_path / "r").events] == ["empty_log"]
    code, _, stderr = invoke("analyze", str(bad), "--out", str(tmp_path / "s"), "--strict")
    assert code == 2
    assert stderr.startswith("error: ")
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_score_matches_events_to_the_injected_faults(drive: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert invoke("analyze", str(drive), "--out", str(out), "--no-figures")[0] == 0
    truth = drive.with_name(drive.name + ".truth.json")
    code, stdout, stderr = invoke("score", str(out), "--truth", str(truth), "--json")
    assert code == 0, stderr
    score = json.loads(stdout)
    assert set(score) == {"faults", "found", "missed", "false_alarms"}
    assert [(f["kind"], f["topic"], f["found"]) for f in score["faults"]] == [
        ("outage", "/camera/image/compressed", True),
        ("corrupt", "/lidar/points", True),
    ]
    assert set(score["faults"][0]) == {"kind", "topic", "found", "time_error_ns"}
    assert (score["found"], score["missed"], score["false_alarms"]) == (2, 0, 0)
    code, stdout, _ = invoke("score", str(out), "--truth", str(truth))
    assert code == 0
    assert "found 2 of 2 faults, 0 false alarms" in stdout


def test_score_mistakes_are_one_line(drive: Path, tmp_path: Path) -> None:
    code, _, stderr = invoke("score", str(tmp_path), "--truth", str(tmp_path / "t.json"))
    assert (code, stderr.strip()) == (2, f"error: {tmp_path} is not a run directory (no run.json)")
    out = tmp_path / "run"
    invoke("analyze", str(drive), "--out", str(out), "--no-figures", "--only", "topic_health")
    code, _, stderr = invoke("score", str(out), "--truth", str(tmp_path / "t.json"))
    assert (code, stderr.strip()) == (2, f"error: truth file {tmp_path / 't.json'} does not exist")


def test_analyze_on_every_real_log_is_clean(shared_data: Path, tmp_path: Path) -> None:
    logs = [
        *sorted((shared_data / "ros1").glob("*.bag")),
        *sorted(p for p in (shared_data / "ros2").iterdir() if p.is_dir()),
    ]
    notes = {}
    for i, log in enumerate(logs):
        code, stdout, stderr = invoke(
            "analyze", str(log), "--out", str(tmp_path / str(i)), "--json", "--no-figures"
        )
        assert code == 0, (log, stderr)
        report = json.loads(stdout)
        assert report["event_counts"]["warning"] == report["event_counts"]["error"] == 0, log
        events = load_run(tmp_path / str(i)).events
        notes[log.name] = sorted((e.kind, e.topic) for e in events)
    assert notes == {
        "raspicam_aruco_compressed.bag": [("latency_high", "/raspicam_node/camera_info")],
        "realsense_t265_fisheye.bag": [],
        "sick_lms1xx_rms_radar.bag": [],
        "tf_example.bag": [],
        "turtlesim_bz2.bag": [("intermittent", "/turtle1/cmd_vel")],
        "turtlesim_lz4.bag": [("intermittent", "/turtle1/cmd_vel")],
        "cdr_test_mcap": [],
        "cdr_test_sqlite3": [],
        "tf_example_sqlite3": [],
    }
