"""``replay compare A B``: metric deltas judged by direction and threshold, new and resolved
events, different logs refused, compare.html, on run directories written from real logs."""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any

import pytest
import typer

import bagscope.cli  # noqa: F401  (before the command module: it imports names from the CLI)
from bagscope.commands.compare import compare
from bagscope.compare import (
    CompareError,
    Threshold,
    compare_paths,
    direction_of,
    match_events,
    parse_thresholds,
)
from bagscope.pipeline.rundir import write_run
from bagscope.pipeline.runner import run_stages
from bagscope.pipeline.stage import Event, FigureSpec, StageResult
from bagscope.replay.log import open_log
from bagscope.replay.sync import make_policy
from tests.logwriter import CAMERA, LIDAR

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from matplotlib.figure import Figure

    from bagscope.replay.frame import Frame

from typer.testing import CliRunner

HTML_TOPIC = "/<b>x</b>"
S = 1_000_000_000

app = typer.Typer()
app.command("compare")(compare)


@app.command("dummy")
def _dummy() -> None:
    """A second command, so typer keeps ``compare`` as a sub-command."""


runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["compare", *args])
    return result.exit_code, result.stdout, result.stderr


class Knob:
    """Run-wide metrics and events we choose, on a real replay of the log (times from it)."""

    name = "knob"

    def __init__(
        self,
        metrics: Mapping[str, float],
        events: Sequence[tuple[str, str | None, str, float]] = (),
        *,
        line: float = 1.0,
    ) -> None:
        self.metrics = metrics
        self.events = events  # (kind, topic, severity, seconds after the first frame)
        self.line = line
        self.times: list[int] = []

    def process(self, frame: Frame) -> None:
        self.times.append(frame.t_ns)

    def finish(self) -> StageResult:
        result = StageResult()
        for metric, value in self.metrics.items():
            topic = HTML_TOPIC if metric == "precision" else None
            result.metrics.add(metric, value, topic=topic)
        result.metrics.extend("frame_ms", self.times, [1.0] * len(self.times))  # timed: ignored
        t0 = self.times[0]
        for kind, topic, severity, after_s in self.events:
            t = t0 + int(after_s * S)
            result.events.append(
                Event(
                    t_ns=t,
                    end_ns=t + S // 10,
                    topic=topic,
                    kind=kind,
                    severity=severity,  # type: ignore[arg-type]
                    message=f"{kind} <i>{severity}</i>",
                )
            )
        line = self.line

        def draw(fig: Figure) -> None:
            fig.subplots().plot([0, 1], [0, line])

        result.figures.append(FigureSpec(name="line", title="A line", draw=draw))
        return result


def make_run(
    log: Path,
    out: Path,
    metrics: Mapping[str, float],
    events: Sequence[tuple[str, str | None, str, float]] = (),
    *,
    line: float = 1.0,
) -> Path:
    with open_log(log) as opened:
        policy = make_policy("nearest", [LIDAR, CAMERA], slop_ns=20_000_000)
        result = run_stages(opened, [Knob(metrics, events, line=line)], sync=policy)
    return write_run(result, out, pipeline={"name": out.name})


BASE = {"precision": 0.8, "latency_ms": 10.0, "fp": 4.0, "custom": 2.0, "dropped": 1.0}
CANDIDATE = {"precision": 0.9, "latency_ms": 12.0, "fp": 4.0, "custom": 3.0, "recall": 0.5}
EVENTS_A = [("gap", LIDAR, "warning", 0.2), ("stale", CAMERA, "info", 0.1)]
EVENTS_B = [("gap", LIDAR, "warning", 0.9), ("corrupt", LIDAR, "error", 0.3)]


@pytest.fixture(scope="module")
def runs(
    camera_lidar_logs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    mcap = camera_lidar_logs["mcap"]
    return {
        "a": make_run(mcap, root / "a", BASE, EVENTS_A),
        "b": make_run(mcap, root / "b", CANDIDATE, EVENTS_B, line=2.0),
        "quiet": make_run(mcap, root / "quiet", {**BASE, "latency_ms": 10.4}),
        "other_log": make_run(camera_lidar_logs["db3"], root / "other", BASE, EVENTS_A),
    }


def rows_of(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["metric"]: m for m in result["metrics"]}


# -- the library -------------------------------------------------------------------------------


def test_deltas_directions_and_events(runs: dict[str, Path]) -> None:
    c = compare_paths(runs["a"], runs["b"])
    assert not isinstance(c, type(None))
    result = c.to_json()
    rows = rows_of(result)
    assert set(rows) == {"precision", "latency_ms", "fp", "custom", "dropped", "recall"}
    assert rows["precision"] == {
        "stage": "knob",
        "metric": "precision",
        "topic": HTML_TOPIC,
        "label": None,
        "a": 0.8,
        "b": 0.9,
        "delta": pytest.approx(0.1),
        "relative": pytest.approx(0.125),
        "better": "higher",
        "direction": "better",
        "threshold": "5%",
        "regression": False,
        "improvement": True,
    }
    assert (rows["latency_ms"]["delta"], rows["latency_ms"]["relative"]) == (2.0, 0.2)
    assert rows["latency_ms"]["direction"] == "worse"
    assert rows["latency_ms"]["regression"] is True
    assert (rows["fp"]["direction"], rows["fp"]["delta"]) == ("same", 0.0)
    assert (rows["custom"]["direction"], rows["custom"]["better"]) == ("changed", "neutral")
    assert rows["custom"]["regression"] is rows["custom"]["improvement"] is False
    assert (rows["dropped"]["direction"], rows["dropped"]["b"]) == ("only_a", None)
    assert (rows["recall"]["direction"], rows["recall"]["a"]) == ("only_b", None)
    # the timed series (frame_ms) is no run-wide metric; regressions sort first
    assert [m["metric"] for m in result["metrics"]][:2] == ["latency_ms", "precision"]
    # the gap moved 0.7 s: the same finding; the corrupt error is new, the stale note resolved
    assert [(e["kind"], e["severity"]) for e in result["new_events"]] == [("corrupt", "error")]
    assert [(e["kind"], e["severity"]) for e in result["resolved_events"]] == [("stale", "info")]
    assert result["summary"] == {
        "regressions": 2,  # latency_ms and the new error
        "metric_regressions": 1,
        "event_regressions": 1,
        "improvements": 1,
        "new_events": 1,
        "resolved_events": 1,
        "new_by_severity": {"error": 1, "warning": 0, "info": 0},
        "resolved_by_severity": {"error": 0, "warning": 0, "info": 1},
    }
    assert result["verdict"] == "2 regressions, 1 improvement, 1 new event, 1 resolved"
    assert [(f["stage"], f["name"]) for f in result["figures"]] == [("knob", "line")]


def test_thresholds_by_name_stage_and_default(runs: dict[str, Path]) -> None:
    def latency(*specs: str) -> dict[str, Any]:
        c = compare_paths(runs["a"], runs["b"], thresholds=parse_thresholds(specs))
        return rows_of(c.to_json())["latency_ms"]

    assert latency("latency_ms=25%")["regression"] is False  # +20 % is within 25 %
    assert latency("latency_ms=25%")["threshold"] == "25%"
    assert latency("latency_ms=25%", "knob.latency_ms=1.5")["regression"] is True  # 2 > 1.5
    assert latency("knob.latency_ms=2")["regression"] is False  # not strictly beyond
    assert latency("knob.latency_ms=2")["threshold"] == "±2"
    assert latency("*=30%")["regression"] is False


def test_parse_thresholds() -> None:
    assert parse_thresholds(["f1=5%", "det.fp=2"]) == {
        "f1": Threshold(0.05),
        "det.fp": Threshold(2.0, relative=False),
    }
    for bad in ("f1", "f1=", "=5%", "f1=abc%", "f1=-1"):
        with pytest.raises(CompareError, match="--threshold"):
            parse_thresholds([bad])


def test_direction_table() -> None:
    higher = ("precision", "recall", "f1", "ap", "map", "frames", "recall@0.5")
    lower = ("fp", "fn", "gaps", "dropped", "corrupt", "latency_p95", "skew_max_ms", "errors")
    neutral = ("rate_hz", "budget_ms", "points_median", "custom")
    assert [direction_of(m) for m in higher] == ["higher"] * len(higher)
    assert [direction_of(m) for m in lower] == ["lower"] * len(lower)
    assert [direction_of(m) for m in neutral] == ["neutral"] * len(neutral)


def test_events_match_within_one_second() -> None:
    def ev(t_s: float, kind: str = "gap", *, extra_ns: int = 0) -> Event:
        t = int(t_s * S) + extra_ns
        return Event(t_ns=t, end_ns=t, topic="/t", kind=kind, severity="warning", message="")

    # 1 s apart: the same; 1.000000001 s apart: one new, one resolved
    assert match_events([ev(10)], [ev(11)]) == ([], [])
    new, resolved = match_events([ev(10)], [ev(11, extra_ns=1)])
    assert (len(new), len(resolved)) == (1, 1)
    # each event matches once; another kind never matches
    new, resolved = match_events([ev(10)], [ev(10), ev(10.5), ev(10, kind="stale")])
    assert sorted((e.t_ns, e.kind) for e in new) == [(10 * S, "stale"), (10_500_000_000, "gap")]
    assert resolved == []
    # times count from each run's log start
    assert match_events([ev(10)], [ev(110)], a_start_ns=0, b_start_ns=100 * S) == ([], [])


# -- the command -------------------------------------------------------------------------------


def test_regression_fails_only_when_asked(runs: dict[str, Path], tmp_path: Path) -> None:
    args = (str(runs["a"]), str(runs["b"]), "--out", str(tmp_path / "c"))
    code, stdout, stderr = invoke(*args)
    assert code == 0, stderr
    assert "2 regressions, 1 improvement, 1 new event, 1 resolved" in stdout
    assert stdout.index("latency_ms") < stdout.index("precision")  # regressions first
    assert "1 unchanged metrics not shown" in stdout
    assert invoke(*args, "--fail-on-regression")[0] == 1


def test_within_threshold_passes(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "c"
    args = (str(runs["a"]), str(runs["quiet"]), "--out", str(out), "--fail-on-regression")
    # +4 % latency (within the default 5 %); the events of A are resolved, none new
    code, stdout, stderr = invoke(*args)
    assert code == 0, stderr
    assert "0 regressions, 0 improvements, 0 new events, 2 resolved" in stdout
    # an absolute threshold of 0.3 ms makes the same +0.4 ms a regression
    assert invoke(*args, "--threshold", "latency_ms=0.3")[0] == 1


def test_json(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "c"
    code, stdout, _ = invoke(str(runs["a"]), str(runs["b"]), "--out", str(out), "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["compare_html"] == str(out / "compare.html")
    assert result["summary"]["regressions"] == 2
    assert rows_of(result)["latency_ms"]["relative"] == 0.2


def test_different_logs_refused_unless_allowed(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "c"
    code, stdout, stderr = invoke(str(runs["a"]), str(runs["other_log"]), "--out", str(out))
    assert code == 2
    assert stderr.count("\n") == 1
    assert "runs over different logs" in stderr
    assert "--allow-different-logs" in stderr
    assert not out.exists()
    code, stdout, stderr = invoke(
        str(runs["a"]), str(runs["other_log"]), "--out", str(out), "--allow-different-logs"
    )
    assert code == 0, stderr
    assert "the runs read different logs" in stdout
    # same metrics and events, at the same offsets from each log's start
    assert "0 regressions, 0 improvements, 0 new events, 0 resolved" in stdout


def test_user_mistakes_are_one_line(runs: dict[str, Path], tmp_path: Path) -> None:
    out = str(tmp_path / "c")
    code, _, stderr = invoke(str(runs["a"]), str(tmp_path), "--out", out)
    assert (code, stderr.count("\n")) == (2, 1)
    assert "is not a run directory (no run.json)" in stderr
    code, _, stderr = invoke(str(runs["a"]), str(runs["b"]), "--threshold", "fp", "--out", out)
    assert (code, stderr.count("\n")) == (2, 1)
    assert "--threshold 'fp': expected METRIC=5% or METRIC=0.02" in stderr


def test_compare_html(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "deep" / "c"
    assert invoke(str(runs["a"]), str(runs["b"]), "--out", str(out))[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["compare.html"]  # no temp file left
    page = (out / "compare.html").read_text()
    assert HTML_TOPIC not in page
    assert "/&lt;b&gt;x&lt;/b&gt;" in page
    assert "corrupt &lt;i&gt;error&lt;/i&gt;" in page
    assert "<i>" not in page
    assert '<tr class="regression">' in page
    assert "2 regressions, 1 improvement, 1 new event, 1 resolved" in page
    # the figure side by side: A's and B's own PNG (different lines), embedded
    side = page[page.index('<div class="side">') :]
    images = [part.split('"', 1)[0] for part in side.split('src="data:image/png;base64,')[1:]]
    assert len(images) == 2
    import base64

    assert base64.b64decode(images[0]) == (runs["a"] / "figures/knob__line.png").read_bytes()
    assert base64.b64decode(images[1]) == (runs["b"] / "figures/knob__line.png").read_bytes()
    assert "http" not in page.replace("http-equiv", "")  # self-contained


def test_batch_folders_pair_runs_by_log(runs: dict[str, Path], tmp_path: Path) -> None:
    for batch, names in (("ba", ("a", "other_log")), ("bb", ("b",))):
        for name in names:
            shutil.copytree(runs[name], tmp_path / batch / "runs" / name)
    code, stdout, stderr = invoke(
        str(tmp_path / "ba"), str(tmp_path / "bb"), "--out", str(tmp_path / "c")
    )
    assert code == 0, stderr
    assert "2 regressions, 1 improvement, 1 new event, 1 resolved over 1 pair of runs" in stdout
    assert f"only in A (no run of its log in B): {tmp_path / 'ba/runs/other_log'}" in stdout
    with pytest.raises(CompareError, match="batch folder"):
        compare_paths(tmp_path / "ba", runs["b"])


def test_analyze_twice_with_other_thresholds(tmp_path: Path) -> None:
    """Real analyzers on a simulated drive with a camera outage: lenient thresholds (A) call
    it dropped frames, the defaults (B) a gap; the comparison says exactly that."""
    from bagscope.cli import app as replay
    from bagscope.sim.config import make_scenario
    from bagscope.sim.simulate import simulate

    scenario = make_scenario(
        "urban", seed=3, duration_ns=2_000_000_000, beams=16, camera_size=(160, 90)
    )
    faults = "outage:/camera/image/compressed=0.8s+0.5s"
    drive = simulate(tmp_path / "drive.mcap", scenario=scenario, faults=faults).log_path
    lenient = tmp_path / "lenient.toml"
    lenient.write_text(
        "[thresholds.topic_health]\ngap_factor = 100.0\nerror_factor = 1000.0\n"
        "outage_s = 100.0\nmin_gap_s = 50.0\n"
    )
    for out, extra in (("A", ["--pipeline", str(lenient)]), ("B", [])):
        args = ["analyze", str(drive), "--only", "health", "--out", str(tmp_path / out), *extra]
        result = runner.invoke(replay, args)
        assert result.exit_code == 0, result.stderr
    code, stdout, stderr = invoke(
        str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(tmp_path / "c"), "--json"
    )
    assert code == 0, stderr
    result = json.loads(stdout)
    camera = "/camera/image/compressed"
    moved = [(m["metric"], m["topic"], m["a"], m["b"], m["direction"]) for m in result["metrics"]]
    moved = [m for m in moved if m[-1] != "same"]
    assert moved == [
        ("drop_ratio", camera, 0.25, 0.0, "better"),
        ("dropped", camera, 15.0, 0.0, "better"),
    ]
    assert [(e["kind"], e["topic"], e["severity"]) for e in result["new_events"]] == [
        ("gap", camera, "error")
    ]
    assert [(e["kind"], e["topic"]) for e in result["resolved_events"]] == [("drop", camera)]
    assert result["verdict"] == "1 regression, 2 improvements, 1 new event, 1 resolved"
    assert len(result["figures"]) >= 2
    pair = (str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(tmp_path / "c"))
    assert invoke(*pair, "--fail-on-regression")[0] == 1
    # a run against itself: nothing moved
    same = (str(tmp_path / "B"), str(tmp_path / "B"), "--out", str(tmp_path / "c"))
    code, stdout, _ = invoke(*same, "--fail-on-regression")
    assert code == 0
    assert "0 regressions, 0 improvements, 0 new events, 0 resolved" in stdout
