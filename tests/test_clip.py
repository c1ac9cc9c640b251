"""``replay clip``: windows of a simulated drive in every format, re-read by three readers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import bagscope.cli  # noqa: F401  (before the command modules: they import from it)
from bagscope.cli import _ReplayGroup
from bagscope.commands.clip import clip

SECOND = 1_000_000_000
runner = CliRunner()
app = typer.Typer(cls=_ReplayGroup)
app.command("clip")(clip)
app.command("noop")(lambda: None)


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def drives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2 s urban drive (16 beams, 160x90), as MCAP (CDR) and as a ROS1 bag."""
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    root = tmp_path_factory.mktemp("clip_src")
    out = {}
    for name in ("drive.mcap", "drive.bag"):
        scenario = make_scenario(
            "urban", seed=7, duration_ns=2 * SECOND, beams=16, camera_size=(160, 90)
        )
        out[name.split(".")[1]] = simulate(root / name, scenario=scenario, workers=0).log_path
    return out


def mcap_messages(path: Path) -> list[tuple[str, int, bytes]]:
    """(topic, log time, bytes) of every message, read by the mcap library."""
    from mcap.reader import make_reader

    with path.open("rb") as fh:
        reader = make_reader(fh)
        return [(c.topic, m.log_time, bytes(m.data)) for _, c, m in reader.iter_messages()]


def any_messages(path: Path) -> tuple[list[tuple[str, int, bytes]], dict[str, Any]]:
    """(topic, log time, bytes) by rosbags' AnyReader, and its connections by topic."""
    from rosbags.highlevel import AnyReader

    with AnyReader([path]) as reader:
        msgs = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
        return msgs, {c.topic: c for c in reader.connections}


def source_window(path: Path, start: int, end: int) -> list[tuple[str, int, bytes]]:
    if path.suffix == ".mcap":
        msgs = mcap_messages(path)
    else:
        msgs, _ = any_messages(path)
    return sorted((m for m in msgs if start <= m[1] < end), key=lambda m: (m[1], m[0]))


def log_start(path: Path) -> int:
    from bagscope.replay.log import open_log

    with open_log(path) as log:
        return log.info().start_ns


CARRIED = {"/tf_static", "/camera/camera_info"}


@pytest.mark.parametrize("src", ["mcap", "bag"])
@pytest.mark.parametrize("fmt", ["mcap", "db3", "bag"])
def test_clip_window_each_format(
    drives: dict[str, Path], tmp_path: Path, src: str, fmt: str
) -> None:
    from bagscope.replay.log import open_log

    source = drives[src]
    t0 = log_start(source)
    start, end = t0 + SECOND // 2, t0 + 3 * SECOND // 2
    out = tmp_path / f"clip.{fmt}"
    code, stdout, stderr = invoke("clip", source, "--start", "0.5", "--end", "1.5s", "-o", out)
    assert code == 0, stderr
    assert stdout.startswith(f"wrote {out} ({fmt}): ")

    expected = source_window(source, start, end)
    msgs, conns = any_messages(out)
    # /tf_static (recorded once, at the start) and the latest CameraInfo come first, at start.
    assert sorted(m[0] for m in msgs[:2]) == sorted(CARRIED)
    assert all(m[1] == start for m in msgs[:2])
    window = msgs[2:]
    assert len(window) == len(expected)
    assert min(m[1] for m in window) >= start
    assert max(m[1] for m in window) < end
    assert sorted(m[:2] for m in window) == sorted(m[:2] for m in expected)
    same = (src == "bag") == (fmt == "bag")
    if same:  # same serialization: byte for byte
        assert sorted(window) == sorted(expected)
    # the carried CameraInfo is the source's latest before the window, payload as recorded
    before = [m for m in source_window(source, 0, start) if m[0] == "/camera/camera_info"]
    info = next(m for m in msgs[:2] if m[0] == "/camera/camera_info")
    if same:
        assert info[2] == before[-1][2]
    if fmt == "mcap":
        assert sorted(mcap_messages(out), key=lambda m: (m[1], m[0])) == sorted(
            msgs, key=lambda m: (m[1], m[0])
        )
    # latched static TF survives as QoS (ROS2) or latching (ROS1)
    ext = conns["/tf_static"].ext
    if fmt == "bag":
        assert ext.latching == 1
    else:
        assert [q.durability.name for q in ext.offered_qos_profiles] == ["TRANSIENT_LOCAL"]

    with open_log(out) as log:
        assert log.info().message_count == len(expected) + 2
        decoded: dict[str, object] = {}
        for m in log.messages(topics=["/lidar/points", "/camera/image/compressed"]):
            decoded.setdefault(m.topic, m.decode())
        assert set(decoded) == {"/lidar/points", "/camera/image/compressed"}
        cloud: Any = decoded["/lidar/points"]
        assert len(cloud.xyz) > 0
        image: Any = decoded["/camera/image/compressed"]
        assert image.pixels.shape[:2] == (90, 160)


def test_clip_topics_and_same_definitions(drives: dict[str, Path], tmp_path: Path) -> None:
    source = drives["mcap"]
    t0 = log_start(source)
    out = tmp_path / "lidar.mcap"
    code, _, stderr = invoke(
        "clip", source, "--start", "1", "--topics", "lidar/points,/tf_static", "-o", out
    )
    assert code == 0, stderr
    msgs = mcap_messages(out)
    expected = [m for m in source_window(source, t0 + SECOND, 2**62) if m[0] == "/lidar/points"]
    assert msgs[0][:2] == ("/tf_static", t0 + SECOND)
    assert msgs[1:] == expected
    from mcap.reader import make_reader

    def schemas(path: Path) -> dict[str, bytes]:
        with path.open("rb") as fh:
            summary = make_reader(fh).get_summary()
        assert summary is not None
        return {s.name: s.data for s in summary.schemas.values()}

    mine, theirs = schemas(out), schemas(source)
    assert mine == {k: theirs[k] for k in mine}


def test_clip_by_events(drives: dict[str, Path], tmp_path: Path) -> None:
    source = drives["mcap"]
    t0 = log_start(source)
    events = [
        {
            "t_ns": t0 + 300_000_000,
            "end_ns": t0 + 400_000_000,
            "topic": "/imu",
            "kind": "gap",
            "severity": "warning",
            "message": "a",
            "evidence": {},
            "stage": "s",
        },
        {
            "t_ns": t0 + 500_000_000,
            "end_ns": t0 + 500_000_000,
            "topic": "/imu",
            "kind": "gap",
            "severity": "error",
            "message": "b",
            "evidence": {},
            "stage": "s",
        },
        {
            "t_ns": t0 + 1_700_000_000,
            "end_ns": t0 + 1_800_000_000,
            "topic": None,
            "kind": "gap",
            "severity": "warning",
            "message": "c",
            "evidence": {},
            "stage": "s",
        },
        {
            "t_ns": t0 + 1_000_000_000,
            "end_ns": t0 + 1_000_000_000,
            "topic": None,
            "kind": "drift",
            "severity": "info",
            "message": "d",
            "evidence": {},
            "stage": "s",
        },
    ]
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    out = tmp_path / "clips"
    code, stdout, stderr = invoke(
        "clip",
        source,
        "--events",
        run / "events.jsonl",
        "--kind",
        "gap",
        "--severity",
        "warning",
        "--pad",
        "100ms",
        "-o",
        out,
    )
    assert code == 0, stderr
    lines = [json.loads(x) for x in (out / "clips.jsonl").read_text().splitlines()]
    w1 = (t0 + 200_000_000, t0 + 600_000_000)
    w2 = (t0 + 1_600_000_000, t0 + 1_900_000_000)
    n1, n2 = (len(source_window(source, *w)) for w in (w1, w2))
    assert lines == [
        {
            "file": "gap_0.300.mcap",
            "start_ns": w1[0],
            "end_ns": w1[1],
            "messages": n1 + 2,
            "carried_in": 2,
            "events": events[:2],
        },
        {
            "file": "gap_1.700.mcap",
            "start_ns": w2[0],
            "end_ns": w2[1],
            "messages": n2 + 2,
            "carried_in": 2,
            "events": [events[2]],
        },
    ]
    assert sorted(p.name for p in out.iterdir()) == [
        "clips.jsonl",
        "gap_0.300.mcap",
        "gap_1.700.mcap",
    ]
    clip1 = mcap_messages(out / "gap_0.300.mcap")
    assert clip1[2:] == source_window(source, *w1)
    assert stdout.splitlines()[-1] == f"wrote {out / 'clips.jsonl'} (2 clips)"
    # again without --overwrite: refused before anything is written
    code, _, stderr = invoke("clip", source, "--events", run, "--kind", "gap", "-o", out)
    assert code == 2
    assert stderr.strip().splitlines() == [
        f"error: {out / 'clips.jsonl'} already exists; pass --overwrite to replace it"
    ]


def _error(*args: str | Path) -> str:
    code, _, stderr = invoke(*args)
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    return lines[0]


def test_clip_errors(drives: dict[str, Path], tmp_path: Path) -> None:
    source = drives["mcap"]
    out = tmp_path / "c.mcap"
    assert _error("clip", source, "--start", "5", "-o", out).startswith(
        "error: --start 5 is after the log ends; the log runs from 0 s to"
    )
    assert _error("clip", source, "--topics", "/lidar/pointz", "-o", out) == (
        "error: topic '/lidar/pointz' is not in the log; did you mean '/lidar/points'?"
    )
    out.write_bytes(b"x")
    assert _error("clip", source, "-o", out) == (
        f"error: {out} already exists; pass --overwrite to replace it"
    )
    assert _error("clip", source, "--events", tmp_path / "nope.jsonl", "-o", tmp_path / "d") == (
        f"error: events file {tmp_path / 'nope.jsonl'} not found; give a run's events.jsonl "
        "(runs/NAME/events.jsonl)"
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hello": 1}\n')
    assert _error("clip", source, "--events", bad, "-o", tmp_path / "d") == (
        f"error: {bad} is not an events.jsonl: line 1 is not an event (t_ns, end_ns, kind)"
    )
    ev = tmp_path / "events.jsonl"
    ev.write_text(json.dumps({"t_ns": 1, "end_ns": 2, "kind": "gap", "severity": "info"}) + "\n")
    assert _error("clip", source, "--events", ev, "--kind", "drift", "-o", tmp_path / "d") == (
        f"error: no events of kind 'drift' in {ev} (kinds: gap)"
    )
    assert _error("clip", source, "--events", ev, "-o", tmp_path / "d").startswith(
        "error: event window -1999999999..2000000002 ns is outside the log"
    )
    assert _error("clip", source, "-o", tmp_path / "x.db3", "--compression", "zstd") == (
        "error: db3 output supports --compression none, not 'zstd'"
    )
    assert _error("clip", source, "-o", tmp_path / "x.bag", "--format", "mcap") == (
        "error: 'x.bag' names a bag log, not mcap; rename it or change the format"
    )
    assert _error("clip", source, "-o", source, "--overwrite") == (
        f"error: {source} would replace the log being read"
    )
    assert not (tmp_path / "d").exists()
