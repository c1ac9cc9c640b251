"""report.html: self-contained, escaped, complete, and readable in a real browser.

Most tests build a run directory by hand (the files ``bagscope.pipeline.rundir`` writes, with
exactly its fields), so the report is tested against the file format rather than a run; one
test writes a run with ``write_run`` itself to keep the two in step.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bagscope.atomic
from bagscope.pipeline.rundir import RunDirError
from bagscope.replay.timeparse import format_clock, format_epoch
from bagscope.viz.report import MAX_EVENT_ROWS, VERDICT_COLOURS, write_report

T0 = 1_700_000_000_123_456_789
SEC = 1_000_000_000
MS = 1_000_000
EVIL_TOPIC = "/<script>alert(1)</script>"
EVIL_MESSAGE = "<b>&\"'"
BLOCK_RGB = (0x00, 0xC8, 0xFF)  # a colour nothing else on the page uses


def draw_png(path: Path, *, block: str | None = None) -> None:
    """A real Matplotlib PNG; with ``block``, one big solid rectangle of that colour."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(8, 3.2), dpi=100)
    ax = fig.add_subplot()
    if block:
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.98)
        ax.add_patch(Rectangle((0, 0), 1, 1, color=block))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_axis_off()
    else:
        ax.plot([0, 1, 2, 3], [1.0, 0.5, 0.9, 0.2])
        ax.set_xlabel("time (s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def event(
    t_s: float,
    severity: str,
    message: str,
    *,
    topic: str | None = "/lidar/points",
    span_s: float = 0.0,
    evidence: dict[str, Any] | None = None,
    kind: str = "gap",
    stage: str = "rates",
) -> dict[str, Any]:
    t_ns = T0 + round(t_s * SEC)
    return {
        "t_ns": t_ns,
        "end_ns": t_ns + round(span_s * SEC),
        "topic": topic,
        "kind": kind,
        "severity": severity,
        "message": message,
        "evidence": evidence or {},
        "stage": stage,
    }


def make_run(
    root: Path,
    *,
    verdict: str = "warn",
    complete: bool = True,
    topic: str = "/lidar/points",
    events: list[dict[str, Any]] | None = None,
    frames: bool = True,
    errors: list[dict[str, Any]] | None = None,
    figures: list[dict[str, Any]] | None = None,
    block: str | None = None,
) -> Path:
    """A run directory with the files and fields rundir.py writes."""
    run_dir = root / "run"
    run_dir.mkdir()
    if events is None:
        events = [
            event(
                12.0,
                "error",
                "no message for 1.500 s",
                span_s=1.5,
                topic=topic,
                evidence={"gap_ns": 1_500_000_000, "threshold_ns": 300_000_000},
            ),
            event(
                0.25,
                "warning",
                "rate 9.1 Hz below 9.5 Hz",
                topic=topic,
                evidence={"rate_hz": 9.1},
                kind="rate",
            ),
            event(3.0, "info", "camera starts", topic="/camera/image/compressed", kind="start"),
        ]
    errors = errors or []
    if figures is None:
        figures = [
            {
                "stage": "rates",
                "name": "rate",
                "title": "Message rate per topic",
                "path": "figures/rates__rate.png",
            },
            {
                "stage": "latency",
                "name": "skew",
                "title": "Camera-lidar skew",
                "path": "figures/latency__skew.png",
            },
        ]
    for i, fig in enumerate(figures):
        target = run_dir / fig["path"]
        if ".." not in fig["path"]:
            draw_png(target, block=block if i == 0 else None)
    topics = [
        {
            "name": topic,
            "msgtype": "sensor_msgs/msg/PointCloud2",
            "count": 200,
            "connections": 1,
            "frequency_hz": 9.98,
            "first_ns": T0,
            "last_ns": T0 + 20 * SEC,
            "max_gap_ns": 1_500_000_000,
            "max_gap_start_ns": T0 + 12 * SEC,
        },
        {
            "name": "/camera/image/compressed",
            "msgtype": "sensor_msgs/msg/CompressedImage",
            "count": 600,
            "connections": 1,
            "frequency_hz": 30.0,
            "first_ns": T0,
            "last_ns": T0 + 20 * SEC,
        },
    ]
    run = {
        "format": 1,
        "bagscope": "0.1.0",
        "created": "2024-05-01T12:00:00+00:00",
        "complete": complete,
        "logs": [
            {
                "path": "/data/logs/drive.mcap",
                "size_bytes": 52_428_800,
                "digest": "sha256-sampled:" + "ab" * 32,
            }
        ],
        "log_digest": "sha256-sampled:" + "cd" * 32,
        "log": {
            "path": "/data/logs/drive.mcap",
            "storage": "mcap",
            "compression": "zstd",
            "start_ns": T0,
            "end_ns": T0 + 20 * SEC,
            "duration_ns": 20 * SEC,
            "message_count": 800,
            "size_bytes": 52_428_800,
            "complete": True,
            "recovery_note": None,
            "topics": topics,
        },
        "pipeline": {"stages": [{"name": "rates"}, {"name": "latency"}], "digest": "sha256:ee"},
        "versions": {
            "python": "3.11.9",
            "bagscope": "0.1.0",
            "numpy": "2.1.0",
            "rosbags": "0.11.0",
            "pyarrow": "17.0.0",
        },
        "window": {"start_ns": None, "end_ns": None},
        "stages": ["rates", "latency"],
        "timings": {
            "stages": {
                "rates": {
                    "frames": 0,
                    "frame_ns": {"p50": None, "p95": None, "p99": None, "max": None},
                    "frame_total_ns": 0,
                    "message_calls": 800,
                    "message_total_ns": 4_200_000,
                    "finish_ns": 1_000_000,
                },
                "latency": {
                    "frames": 199,
                    "frame_ns": {
                        "p50": 12_345_678,
                        "p95": 40 * MS,
                        "p99": 70 * MS,
                        "max": 130 * MS,
                    },
                    "frame_total_ns": 3 * SEC,
                    "message_calls": 0,
                    "message_total_ns": 0,
                    "finish_ns": 2_000_000,
                },
            },
            "period_ns": 100 * MS,
            "frame_total_ns": {"p50": 12_345_678, "p95": 40 * MS, "p99": 70 * MS, "max": 130 * MS},
            "read_ns": 800 * MS,
        },
        "frames": {
            "frames": 199,
            "topics": {
                topic: {
                    "messages": 200,
                    "used": 199,
                    "not_needed": 0,
                    "dropped": 1,
                    "decode_errors": 0,
                },
                "/camera/image/compressed": {
                    "messages": 600,
                    "used": 199,
                    "not_needed": 398,
                    "dropped": 0,
                    "decode_errors": 3,
                },
            },
            "skew_ns": {"p50": 3 * MS, "p95": 8 * MS, "max": 16 * MS},
            "reasons": ["1 lidar message had no camera image within 50 ms"],
        }
        if frames
        else None,
        "messages": 800,
        "frames_count": 199 if frames else 0,
        "wall_ns": 4 * SEC,
        "errors": errors,
        "error_counts": {e["stage"]: 1 for e in errors},
    }
    counts = {s: sum(1 for e in events if e["severity"] == s) for s in ("info", "warning", "error")}
    report = {
        "verdict": verdict,
        "complete": complete,
        "log": {
            "paths": ["/data/logs/drive.mcap"],
            "start_ns": T0,
            "end_ns": T0 + 20 * SEC,
            "duration_ns": 20 * SEC,
        },
        "checks": [
            {
                "stage": "rates",
                "name": "rate",
                "topic": topic,
                "status": "pass",
                "value": "9.98 Hz",
                "threshold": ">= 9.50 Hz",
            },
            {
                "stage": "latency",
                "name": "skew p95",
                "topic": None,
                "status": "warn",
                "value": "8.0 ms",
                "threshold": "<= 5.0 ms",
            },
            {
                "stage": "rates",
                "name": "max gap",
                "topic": topic,
                "status": "fail",
                "value": "1.500 s",
                "threshold": "<= 0.300 s",
            },
        ],
        "event_counts": counts,
        "stage_errors": len(errors),
        "tables": [
            {
                "stage": "latency",
                "title": "Worst frames",
                "columns": ["frame", "t (s)", "topic"],
                "rows": [[17, 1.7, topic], [42, 4.2, "/camera/image/compressed"]],
            },
        ],
        "figures": figures,
    }
    (run_dir / "run.json").write_text(json.dumps(run, indent=2))
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    _write_metrics(run_dir / "metrics.parquet")
    return run_dir


def _write_metrics(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "t_ns": pa.array([T0, None], type=pa.int64()),
            "stage": ["rates", "rates"],
            "metric": ["rate_hz", "rate_hz"],
            "value": [9.9, 9.98],
            "topic": ["/lidar/points", "/lidar/points"],
            "label": [None, None],
        }
    )
    pq.write_table(table, path)


def render(run_dir: Path) -> str:
    out = write_report(run_dir)
    assert out == run_dir / "report.html"
    return out.read_text(encoding="utf-8")


# -- content --------------------------------------------------------------------------------


def test_page_is_self_contained(tmp_path: Path) -> None:
    page = render(make_run(tmp_path))
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page
    assert page.count('src="data:image/png;base64,') == 2
    assert "<script" not in page.lower()
    # nothing is loaded from anywhere: no remote src/href, no file references
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "Content-Security-Policy" in page


def test_header_shows_the_verdict_and_log(tmp_path: Path) -> None:
    page = render(make_run(tmp_path, verdict="fail"))
    assert 'class="verdict v-fail"' in page
    assert "drive.mcap" in page
    assert "/data/logs/drive.mcap" in page
    assert format_clock(T0) in page  # 2023-11-14 22:13:20.123Z
    assert format_epoch(T0) in page  # 1700000000.123456789
    assert "20.000 s" in page
    assert "800" in page
    assert "Incomplete run" not in page


def test_incomplete_run_has_a_banner(tmp_path: Path) -> None:
    page = render(make_run(tmp_path, complete=False))
    assert "Incomplete run" in page


def test_everything_from_the_log_is_escaped(tmp_path: Path) -> None:
    errors = [
        {
            "stage": "rates",
            "phase": "frame",
            "t_ns": T0 + 2 * SEC,
            "error": "ValueError: <img src=x onerror=alert(2)>",
            "traceback": "Traceback (most recent call last):\n  <script>alert(3)</script>\n",
        },
    ]
    events = [
        event(
            1.0,
            "error",
            EVIL_MESSAGE,
            topic=EVIL_TOPIC,
            evidence={"<i>key</i>": "<script>alert(4)</script>"},
            kind="<u>kind</u>",
        ),
    ]
    figures = [
        {
            "stage": "rates",
            "name": "x",
            "title": "<script>alert(5)</script>",
            "path": "figures/rates__x.png",
        }
    ]
    page = render(
        make_run(tmp_path, topic=EVIL_TOPIC, events=events, errors=errors, figures=figures)
    )
    # topics get <wbr> after each slash (line breaks at slashes); the text itself is escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.replace("<wbr>", "")
    assert "&lt;b&gt;&amp;&quot;&#x27;" in page
    assert EVIL_MESSAGE not in page
    assert "<script" not in page.lower()
    assert "<img src=x" not in page
    assert "<i>key</i>" not in page
    assert "<u>kind</u>" not in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page


def test_events_are_sorted_by_time_with_log_relative_seconds(tmp_path: Path) -> None:
    page = render(make_run(tmp_path))
    first = page.index("rate 9.1 Hz below 9.5 Hz")
    second = page.index("camera starts")
    third = page.index("no message for 1.500 s")
    assert first < second < third
    assert ">0.250<" in page
    assert ">12.000<" in page
    assert "→ 13.500" in page  # the error's end
    assert "1.500 s" in page  # and its duration
    # evidence: collapsed, ns values also in people's units
    assert '<details class="evidence">' in page
    assert "gap_ns=1500000000 (1.500 s)" in page
    # severity classes make errors and warnings stand out
    assert 'class="sev-error"' in page
    assert 'class="sev-warning"' in page
    assert 'id="show-error"' in page


def test_checks_are_grouped_by_stage(tmp_path: Path) -> None:
    page = render(make_run(tmp_path))
    section = page[page.index('id="checks"') : page.index('id="events"')]
    rates = section.index('<tr class="group"><th colspan="5">rates')
    latency = section.index('<tr class="group"><th colspan="5">latency')
    assert rates < section.index("max gap") < latency < section.index("skew p95")
    for status in ("pass", "warn", "fail"):
        assert f'class="pill s-{status}"' in section
    assert "&gt;= 9.50 Hz" in section


def test_timing_and_frame_accounting(tmp_path: Path) -> None:
    page = render(make_run(tmp_path))
    timing = page[page.index('id="timing"') :]
    assert ">12.35<" in timing  # p50 12_345_678 ns in ms
    assert '<td class="num over">130.00</td>' in timing  # max over the 100 ms period
    assert "100.0 ms" in timing
    assert "10.0 Hz" in timing
    frames = page[page.index('id="frames"') :]
    for word in ("used", "not needed", "dropped", "decode errors"):
        assert word in frames
    assert ">398<" in frames
    assert "no camera image within 50 ms" in frames


def test_no_frame_section_without_frames(tmp_path: Path) -> None:
    page = render(make_run(tmp_path, frames=False))
    assert 'id="frames"' not in page


def test_stage_errors_have_collapsed_tracebacks(tmp_path: Path) -> None:
    errors = [
        {
            "stage": "latency",
            "phase": "frame",
            "t_ns": T0 + 2 * SEC,
            "error": "ZeroDivisionError: division by zero",
            "traceback": 'Traceback (most recent call last):\n  File "x.py", line 1\n',
        },
    ]
    page = render(make_run(tmp_path, errors=errors))
    section = page[page.index('id="errors"') : page.index('id="events"')]
    assert "ZeroDivisionError: division by zero" in section
    assert "at 2.000 s" in section
    assert '<details class="trace"><summary>traceback</summary>' in section


def test_tables_and_figures_grouped_by_stage(tmp_path: Path) -> None:
    page = render(make_run(tmp_path))
    assert "Worst frames" in page
    figures = page[page.index('id="figures"') :]
    assert figures.index("<h3>rates</h3>") < figures.index("Message rate per topic")
    assert figures.index("<h3>latency</h3>") < figures.index("Camera-lidar skew")


def test_missing_and_outside_figures_are_not_embedded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    draw_png(secret)
    figures = [
        {"stage": "rates", "name": "a", "title": "gone", "path": "figures/gone.png"},
        {"stage": "rates", "name": "b", "title": "outside", "path": "../secret.png"},
    ]
    run_dir = make_run(tmp_path, figures=figures)
    (run_dir / "figures" / "gone.png").unlink()
    page = render(run_dir)
    assert "data:image/png" not in page
    assert "file missing" in page
    assert "not inside the run directory" in page


def test_damaged_event_lines_are_reported_not_fatal(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    with (run_dir / "events.jsonl").open("a") as fh:
        fh.write("{not json\n")
    page = render(run_dir)
    assert "1 line of events.jsonl could not be read" in page
    assert "no message for 1.500 s" in page


def test_many_events_keep_every_error(tmp_path: Path) -> None:
    events = [event(i * 0.001, "info", f"tick {i}") for i in range(MAX_EVENT_ROWS + 50)]
    events.append(event(19.0, "error", "the one error"))
    page = render(make_run(tmp_path, events=events))
    assert "the one error" in page
    assert page.count('<tr class="sev-info">') == MAX_EVENT_ROWS - 1
    assert "51 info events left out" in page


def test_empty_log_without_events_file(tmp_path: Path) -> None:
    """A log without messages has no extent (not 1970); a missing events file is said so."""
    run_dir = make_run(tmp_path, events=[], frames=False)
    for name in ("run.json", "report.json"):
        data = json.loads((run_dir / name).read_text())
        data["log"].update(start_ns=None, end_ns=None, duration_ns=0)
        (run_dir / name).write_text(json.dumps(data))
    (run_dir / "events.jsonl").unlink()
    page = render(run_dir)
    assert "1970" not in page
    assert "No events.jsonl" in page
    assert "No events were reported." in page


def test_errors_beyond_those_kept_are_counted(tmp_path: Path) -> None:
    errors = [
        {
            "stage": "rates",
            "phase": "message",
            "t_ns": None,
            "error": "KeyError: 'x'",
            "traceback": "",
        },
    ]
    run_dir = make_run(tmp_path, errors=errors)
    data = json.loads((run_dir / "run.json").read_text())
    data["error_counts"] = {"rates": 25}
    (run_dir / "run.json").write_text(json.dumps(data))
    page = render(run_dir)
    assert "25 stage errors." in page
    assert "24 more errors of stage" in page


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="not a run directory"):
        write_report(tmp_path)


def test_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = make_run(tmp_path)
    (run_dir / "report.html").write_text("old")

    def broken(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bagscope.atomic.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_report(run_dir)
    assert (run_dir / "report.html").read_text() == "old"
    monkeypatch.undo()
    write_report(run_dir)
    assert (run_dir / "report.html").read_text().startswith("<!DOCTYPE")
    leftovers = sorted(p.name for p in run_dir.iterdir() if p.name.startswith("."))
    assert leftovers == []
    assert (run_dir / "report.html").stat().st_mode & 0o044  # readable by others (umask 022)


def test_viz_imports_no_log_reader() -> None:
    code = (
        "import sys, bagscope.viz.report\n"
        "bad = [m for m in sys.modules if m.startswith(('rosbags', 'mcap', 'bagscope.replay.log',"
        " 'bagscope.replay.storage', 'bagscope.replay.decode'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- with the real run directory writer ----------------------------------------------------


class _Findings:
    """A tiny frame stage that leaves a check, an event, a table and a figure behind."""

    name = "findings"

    def __init__(self) -> None:
        self.frames = 0

    def process(self, frame: Any) -> None:
        self.frames += 1

    def finish(self) -> Any:
        from bagscope.pipeline.stage import Check, Event, FigureSpec, StageResult, Table

        def draw(fig: Any) -> None:
            ax = fig.add_subplot()
            ax.bar([0, 1], [self.frames, 1], color="#4c78a8")

        return StageResult(
            events=[
                Event(
                    t_ns=1_700_000_000_300_000_000,
                    end_ns=1_700_000_000_300_000_000,
                    topic="/lidar/points",
                    kind="note",
                    severity="warning",
                    message="a finding <with markup>",
                )
            ],
            checks=[
                Check(
                    name="frames",
                    topic=None,
                    status="pass",
                    value=str(self.frames),
                    threshold=">= 1",
                )
            ],
            tables=[Table(title="Frame count", columns=("frames",), rows=((self.frames,),))],
            figures=[FigureSpec(name="count", title="Frames seen", draw=draw)],
        )


def test_report_of_a_real_run(tmp_path: Path, camera_lidar_logs: dict[str, Path]) -> None:
    from bagscope.pipeline.rundir import write_run
    from bagscope.pipeline.runner import run_stages
    from bagscope.replay.log import open_log
    from bagscope.replay.sync import make_policy

    with open_log(camera_lidar_logs["mcap"]) as log:
        policy = make_policy(
            "nearest", ["/lidar/points", "/camera/image/compressed"], slop_ns=50 * MS
        )
        result = run_stages(log, [_Findings()], sync=policy)
    out = write_run(result, tmp_path / "run", pipeline={"digest": "sha256:00"}, finish=write_report)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'class="verdict v-warn"' in page
    assert "a finding &lt;with markup&gt;" in page
    assert "Frames seen" in page
    assert page.count("data:image/png;base64,") == 1
    assert 'id="frames"' in page
    assert 'id="timing"' in page
    # rendered inside write_run's temporary folder, the page names nothing of that folder
    assert ".tmp" not in page
    assert write_report(out).read_text(encoding="utf-8") == page


# -- in a real browser ---------------------------------------------------------------------


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def _pixels_near(image: Any, rgb: tuple[int, int, int], tol: int = 8) -> int:
    import numpy as np

    arr = np.asarray(image.convert("RGB"), dtype=np.int16)
    close = np.all(np.abs(arr - np.array(rgb, dtype=np.int16)) <= tol, axis=-1)
    return int(close.sum())


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def test_browser_renders_the_figures_and_verdict(tmp_path: Path) -> None:
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium, chromium-browser or google-chrome on PATH (apt install chromium)")
    from PIL import Image

    run_dir = make_run(tmp_path, verdict="fail", block="#00c8ff", topic=EVIL_TOPIC)
    page = write_report(run_dir)
    shot = tmp_path / "shot.png"
    cmd = [
        browser,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1280,3000",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--no-first-run",
        f"--screenshot={shot}",
        page.resolve().as_uri(),
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert shot.is_file(), f"no screenshot (rc {proc.returncode}): {proc.stderr[-2000:]}"
    if target := os.environ.get("BAGSCOPE_REPORT_SCREENSHOT"):
        shutil.copyfile(shot, target)
    with Image.open(shot) as image:
        assert image.size == (1280, 3000)
        # the figure with the solid block is drawn, large (it spans the column)
        assert _pixels_near(image, BLOCK_RGB) > 150_000
        # the verdict badge is there, in the fail colour
        assert _pixels_near(image, _hex_rgb(VERDICT_COLOURS["fail"]), tol=4) > 4_000
