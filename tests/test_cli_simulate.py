"""``replay simulate`` on the command line: names, help, errors in the user's words, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bagscope.cli import app
from bagscope.sim.choices import FAULT_EXAMPLES, FAULT_KINDS, FAULT_MEANINGS, fault_syntax

runner = CliRunner()
# The cheapest drive that writes every topic: these tests are about files and words.
TINY = ["--duration", "0.2s", "--beams", "16", "--camera-size", "16x16"]


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _help_text() -> str:
    """``simulate --help`` as one line of words, whatever the width its panels wrap at."""
    code, stdout, _ = invoke("simulate", "--help")
    assert code == 0
    return " ".join(stdout.replace("│", " ").split())


# -- which file or directory a name becomes, and that it is the one to open ------------------


@pytest.mark.parametrize(
    ("args", "written", "kind", "inside"),
    [
        (["drive"], "drive", "rosbag2 directory, mcap storage", ["drive.mcap", "metadata.yaml"]),
        (["x.db3"], "x.db3", "rosbag2 directory, db3 storage", ["metadata.yaml", "x.db3"]),
        (["drive", "--format", "db3"], "drive", "rosbag2 directory, db3 storage", None),
        (["d.mcap"], "d.mcap", "mcap file", None),
    ],
)
def test_the_printed_path_is_the_name_given_and_replay_info_opens_it(
    tmp_path: Path, args: list[str], written: str, kind: str, inside: list[str] | None
) -> None:
    out = tmp_path / args[0]
    code, stdout, stderr = invoke("simulate", str(out), *args[1:], *TINY)
    assert (code, stderr) == (0, "")
    line = re.fullmatch(
        rf"wrote {re.escape(str(tmp_path / written))} \({kind}\): 200\.0 ms of urban, "
        rf"(\d+) messages in \d+\.\d s = \d+\.\d\d× real time; "
        rf"truth: {re.escape(str(tmp_path / written))}\.truth\.json\n",
        stdout,
    )
    assert line is not None, stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [written, f"{written}.truth.json"]
    if inside is not None:
        assert sorted(p.name for p in out.iterdir()) == inside
    code, stdout, _ = invoke("info", str(tmp_path / written), "--json")
    assert code == 0
    assert json.loads(stdout)["message_count"] == int(line.group(1))


def test_a_bag_without_its_suffix_is_refused_naming_the_format_option(tmp_path: Path) -> None:
    code, stdout, stderr = invoke("simulate", str(tmp_path / "drive"), "--format", "bag", *TINY)
    assert (code, stdout) == (2, "")
    assert stderr == "error: --format: a bag log must be named *.bag, got 'drive'\n"
    assert list(tmp_path.iterdir()) == []


# -- help ----------------------------------------------------------------------------------------


def test_help_lists_every_fault_kind_with_its_syntax_meaning_and_example() -> None:
    text = _help_text()
    for kind in FAULT_KINDS:
        line = f"{fault_syntax(kind)} — {FAULT_MEANINGS[kind]}; e.g. {FAULT_EXAMPLES[kind]}"
        assert line in text, kind
    assert "ns/us/ms/s/m" in text
    assert "pose_jump DISTANCE is in metres" in text  # m is minutes everywhere else
    assert "…" not in text  # nothing cut short by a narrow panel


@pytest.mark.parametrize(
    "example",
    [
        "drift:/imu=2000ppm",
        "zero_stamps:/camera/image/compressed=0.02",
        "freeze:/camera/image/compressed=5s+3s",
        "pose_jump:/odom=6s+6m",
        "blocked_sector:/lidar/points=4s+3s@30:90",
    ],
)
def test_help_shows_an_example_of_each_new_kind(example: str) -> None:
    assert f"e.g. {example}" in _help_text()


@pytest.mark.parametrize(
    "default",
    [
        "[default: (from OUT: .bag is bag, .db3 is db3, any other name mcap)]",
        "[default: 20s]",
        "[default: 0]",
        "[default: urban]",
        "[default: (none)]",
        "[default: 64]",
        "[default: 480x270]",
        "[default: (off: JPEG)]",
        "[default: no-overwrite]",
    ],
)
def test_help_shows_every_default(default: str) -> None:
    assert default in _help_text()


def test_help_states_the_naming_rule() -> None:
    text = _help_text()
    assert (
        "A name ending in .mcap is one MCAP file, in .bag a ROS1 bag file; any other name "
        "(drive, drive.db3) is a rosbag2 directory of that name holding the storage file and "
        "metadata.yaml."
    ) in text
    assert "Lidar beams: 16, 32, 64, 128." in text
    assert "The scene: urban | highway | parking." in text
    assert "Log format: mcap | db3 | bag." in text


# -- mistakes: one line, exit 2, in the command line's words ------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--camera-size", "big"], "error: --camera-size must look like 1280x720, not 'big'"),
        (
            ["--camera-size", "8x8"],
            "error: --camera-size: camera size must be between 16 and 8192 pixels a side, got 8x8",
        ),
        (
            ["--beams", "7"],
            "error: --beams: unsupported lidar beam count 7; choose one of 16, 32, 64, 128",
        ),
        (
            ["--scenario", "moon"],
            "error: --scenario: unknown scenario 'moon'; choose one of urban, highway, parking",
        ),
        (
            ["--format", "zip"],
            "error: --format: unknown log format 'zip'; choose one of mcap, db3, bag",
        ),
        (["--duration", "0s"], "error: --duration must be positive, not '0s'"),
        (
            ["--faults", "drop:/imu=2"],
            "error: --faults: bad fault 'drop:/imu=2': probability must be a number in [0, 1], "
            "got '2'",
        ),
        (
            ["--faults", "drift:/imu=2000"],
            "error: --faults: bad fault 'drift:/imu=2000': drift must be a number of ppm between "
            "-1000000 and 1000000, e.g. 2000ppm or -500ppm, got '2000'",
        ),
        (
            ["--faults", "pose_jump:/imu=6s+6m"],
            "error: --faults: fault 'pose_jump:/imu=6s+6m': pose_jump applies only to the "
            "odometry topic; use /odom",
        ),
        (
            ["--faults", "blocked_sector:/imu=4s+3s@30:90"],
            "error: --faults: fault 'blocked_sector:/imu=4s+3s@30:90': blocked_sector applies "
            "only to the point cloud topic; use /lidar/points",
        ),
        (
            ["--faults", "pose_jump:/odom=6m"],
            "error: --faults: bad fault 'pose_jump:/odom=6m': pose_jump must be "
            "START+DISTANCE, e.g. 6s+6m",
        ),
    ],
)
def test_bad_values_are_one_line_naming_the_option(
    tmp_path: Path, args: list[str], line: str
) -> None:
    code, stdout, stderr = invoke("simulate", str(tmp_path / "d.mcap"), *args)
    assert (code, stdout, stderr) == (2, "", line + "\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--duration", "5 parsecs"], "error: --duration: "),
        (["--beams", "many"], "'--beams'"),
    ],
)
def test_unreadable_values_are_one_line_naming_the_option(
    tmp_path: Path, args: list[str], option: str
) -> None:
    code, stdout, stderr = invoke("simulate", str(tmp_path / "d.mcap"), *args)
    assert (code, stdout) == (2, "")
    assert stderr.startswith("error: ")
    assert option in stderr
    assert stderr.count("\n") == 1
    assert "Traceback" not in stderr


def test_the_new_fault_kinds_run_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "d.mcap"
    spec = (
        "drift:/imu=2000ppm,zero_stamps:/tf=1,freeze:/imu=50ms+50ms,pose_jump:/odom=0.1s+6m,"
        "blocked_sector:/lidar/points=0s+0.2s@-180:180"
    )
    code, _, stderr = invoke("simulate", str(out), *TINY, "--faults", spec)
    assert (code, stderr) == (0, "")
    faults = json.loads(Path(f"{out}.truth.json").read_text())["faults"]
    assert [f["kind"] for f in faults] == [
        "drift",
        "zero_stamps",
        "freeze",
        "pose_jump",
        "blocked_sector",
    ]
    assert [f["count"] for f in faults] == [20, 10, 5, 5, 2]
    assert all({"start_ns", "end_ns"} <= set(f) for f in faults)


def test_an_existing_log_names_the_overwrite_option(tmp_path: Path) -> None:
    out = tmp_path / "d.mcap"
    out.write_bytes(b"mine")
    code, stdout, stderr = invoke("simulate", str(out), *TINY)
    assert (code, stdout) == (2, "")
    assert stderr == f"error: {out} exists already; pass --overwrite to replace it\n"
    assert out.read_bytes() == b"mine"
    code, _, stderr = invoke("simulate", str(out), *TINY, "--overwrite")
    assert (code, stderr) == (0, "")
    assert out.read_bytes()[:8] == b"\x89MCAP0\r\n"


# -- Ctrl-C ----------------------------------------------------------------------------------------


def _children(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


@pytest.mark.skipif(
    not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
    reason="needs Linux /proc to see the worker processes",
)
def test_ctrl_c_stops_cleanly_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "d.mcap"
    command = [sys.executable, "-m", "bagscope", "simulate", str(out), "--duration", "30s"]
    # A terminal's Ctrl-C interrupts the whole process group, workers included: so does this.
    process = subprocess.Popen(
        [*command, "--beams", "16", "--camera-size", "64x48"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        # writing has begun (the hidden temp sibling exists) and both workers are up
        while not (list(tmp_path.glob(".d.mcap.*")) and len(_children(process.pid)) >= 2):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the drive never started"
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stdout == ""
    assert list(tmp_path.iterdir()) == []
