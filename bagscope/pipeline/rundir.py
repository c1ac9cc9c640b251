"""The run directory: the only interface between a run and everything after it.

``report``, ``score``, ``compare``, ``view --run`` and batch aggregation read these files and
never the run's objects, so a run from last week and one from a different machine are read the
same way::

    run.json         what ran on what: logs (paths, sizes, digests), pipeline, versions, window,
                     stage timings, frame accounting, stage errors, complete or not
    metrics.parquet  long format: t_ns, stage, metric, value, topic, label
    events.jsonl     one finding per line: t_ns, end_ns, topic, kind, severity, message, ...
    report.json      verdict, checks, event counts, tables, figures
    figures/         <stage>__<name>.png
    report.html      written by bagscope.viz.report from the files above

The directory is written under a temporary name beside its destination and renamed into place
at the end, so a crash or Ctrl-C never leaves a half-written run where a run is expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bagscope.errors import BagscopeError
from bagscope.interrupts import deferred_interrupt
from bagscope.pipeline.stage import Event, status_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    import pyarrow as pa

    from bagscope.pipeline.runner import RunResult
    from bagscope.pipeline.stage import FigureSpec

__all__ = [
    "FORMAT_VERSION",
    "RunDir",
    "RunDirError",
    "load_run",
    "log_digest",
    "metrics_table",
    "verdict_of",
    "write_run",
]

FORMAT_VERSION = 1
_SAMPLE = 1 << 20  # bytes hashed at each sample point of a log file
_SAMPLES = 16


class RunDirError(BagscopeError):
    """A run directory that cannot be written (exists, not writable) or read (not a run)."""


def log_digest(paths: Sequence[Path]) -> str:
    """A fingerprint of a log that costs milliseconds, not a read of the whole file.

    Hashes each file's name and size plus 1 MiB at the start, the end and 14 points between:
    any re-recording, cut or append changes it, while a 4 GB log is not read end to end just
    to be named. The prefix says it is sampled, so nobody mistakes it for a full checksum.
    """
    h = hashlib.sha256()
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    for file in files:
        size = file.stat().st_size
        h.update(f"{file.name}\0{size}\0".encode())
        with file.open("rb") as fh:
            if size <= _SAMPLE * _SAMPLES:
                h.update(fh.read())
                continue
            step = (size - _SAMPLE) // (_SAMPLES - 1)
            for i in range(_SAMPLES):
                fh.seek(i * step)
                h.update(fh.read(_SAMPLE))
    return f"sha256-sampled:{h.hexdigest()}"


def verdict_of(events: Iterable[Event]) -> str:
    """pass / warn / fail: the worst severity among the events."""
    return status_of(events)


def metrics_table(result: RunResult) -> pa.Table:
    """All stages' metrics as one long table (string columns dictionary-encoded)."""
    import numpy as np
    import pyarrow as pa

    t_parts: list[Any] = []
    v_parts: list[Any] = []
    stage_col: list[str] = []
    metric_col: list[str] = []
    topic_col: list[str | None] = []
    label_col: list[str | None] = []
    for stage, res in result.results.items():
        for (metric, topic, label), (times, values) in res.metrics.groups():
            n = len(times)
            t_parts.append(np.frombuffer(times, dtype=np.int64) if n else np.empty(0, np.int64))
            v_parts.append(np.frombuffer(values, dtype=np.float64) if n else np.empty(0))
            stage_col.extend([stage] * n)
            metric_col.extend([metric] * n)
            topic_col.extend([topic] * n)
            label_col.extend([label] * n)
    t = np.concatenate(t_parts) if t_parts else np.empty(0, np.int64)
    v = np.concatenate(v_parts) if v_parts else np.empty(0)
    return pa.table(
        {
            "t_ns": pa.array(t, type=pa.int64(), mask=t == -1),
            "stage": pa.array(stage_col, type=pa.string()).dictionary_encode(),
            "metric": pa.array(metric_col, type=pa.string()).dictionary_encode(),
            "value": pa.array(v, type=pa.float64()),
            "topic": pa.array(topic_col, type=pa.string()).dictionary_encode(),
            "label": pa.array(label_col, type=pa.string()).dictionary_encode(),
        }
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("bagscope", "numpy", "rosbags", "pyarrow", "matplotlib"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _json_dump(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    msg = f"{type(obj).__name__} is not JSON serialisable"
    raise TypeError(msg)


def _run_json(
    result: RunResult, *, pipeline: Mapping[str, Any], log_paths: Sequence[Path]
) -> dict[str, Any]:
    logs = [
        {
            "path": str(p),
            "size_bytes": sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            if p.is_dir()
            else p.stat().st_size,
            "digest": log_digest([p]),
        }
        for p in log_paths
    ]
    return {
        "format": FORMAT_VERSION,
        "bagscope": _versions()["bagscope"],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "complete": result.complete,
        "logs": logs,
        "log_digest": log_digest(log_paths),
        "log": result.info.to_json(),
        "pipeline": dict(pipeline),
        "versions": _versions(),
        "window": {"start_ns": result.start_ns, "end_ns": result.end_ns},
        "stages": list(result.stages),
        "timings": result.timings.to_json(),
        "frames": result.frame_stats.to_json() if result.frame_stats is not None else None,
        "messages": result.messages,
        "frames_count": result.frames,
        "wall_ns": result.wall_ns,
        "errors": [e.to_json() for e in result.errors],
        "error_counts": result.error_counts,
        "sharding": result.sharding,
    }


def _draw_figures(result: RunResult, folder: Path) -> list[dict[str, Any]]:
    specs: list[tuple[str, FigureSpec]] = [
        (stage, spec) for stage, res in result.results.items() for spec in res.figures
    ]
    if not specs:
        return []
    import matplotlib as mpl

    mpl.use("Agg", force=False)
    from matplotlib.figure import Figure

    folder.mkdir()
    written = []
    for stage, spec in specs:
        fig = Figure(figsize=spec.size, dpi=110, layout="constrained")
        spec.draw(fig)
        # a figure already named after its stage is not prefixed twice
        name = f"{stage}__{spec.name.removeprefix(f'{stage}_')}.png"
        fig.savefig(folder / name)
        written.append(
            {"stage": stage, "name": spec.name, "title": spec.title, "path": f"figures/{name}"}
        )
    return written


def _report_json(
    result: RunResult, events: Sequence[Event], figures: list[dict[str, Any]]
) -> dict[str, Any]:
    counts = dict.fromkeys(("info", "warning", "error"), 0)
    for event in events:
        counts[event.severity] += 1
    info = result.info
    return {
        "verdict": verdict_of(events),
        "complete": result.complete,
        "log": {
            "paths": [str(p) for p in info.paths],
            "start_ns": info.start_ns if info.message_count else None,
            "end_ns": info.end_ns if info.message_count else None,
            "duration_ns": info.duration_ns if info.message_count else 0,
        },
        "checks": [c.to_json() for res in result.results.values() for c in res.checks],
        "event_counts": counts,
        "stage_errors": sum(result.error_counts.values()),
        "tables": [
            {"stage": stage, **t.to_json()}
            for stage, res in result.results.items()
            for t in res.tables
        ],
        "figures": figures,
    }


def write_run(
    result: RunResult,
    out: Path,
    *,
    pipeline: Mapping[str, Any],
    overwrite: bool = False,
    figures: bool = True,
    finish: Callable[[Path], object] | None = None,
) -> Path:
    """Write ``result`` as the run directory ``out``; all or nothing.

    ``finish`` is called on the temporary directory once every file is in it (the report
    writer lives above this layer, so it is passed in). An existing ``out`` is replaced only
    with ``overwrite``, and only once the new run is complete on disk.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        msg = f"{out} already exists; give another --out or --overwrite"
        raise RunDirError(msg)
    if out.exists() and not (out / "run.json").is_file():
        msg = f"{out} exists and is not a run directory; refusing to replace it"
        raise RunDirError(msg)
    parent = out.parent if str(out.parent) else Path()
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with deferred_interrupt():  # never a temp folder whose name we did not keep
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    except OSError as err:
        msg = f"cannot write the run directory {out}: {err.strerror or err}"
        raise RunDirError(msg) from err
    try:
        events = sorted(
            (e for res in result.results.values() for e in res.events),
            key=lambda e: (e.t_ns, e.stage, e.kind),
        )
        _json_dump(
            _run_json(result, pipeline=pipeline, log_paths=result.info.paths), tmp / "run.json"
        )
        import pyarrow.parquet as pq

        pq.write_table(metrics_table(result), tmp / "metrics.parquet")
        with (tmp / "events.jsonl").open("w") as fh:
            for event in events:
                fh.write(json.dumps(event.to_json(), default=_json_default) + "\n")
        drawn = _draw_figures(result, tmp / "figures") if figures else []
        _json_dump(_report_json(result, events, drawn), tmp / "report.json")
        if finish is not None:
            finish(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace(tmp: Path, out: Path) -> None:
    if not out.exists():
        tmp.rename(out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class RunDir:
    """A run directory opened for reading."""

    path: Path
    run: dict[str, Any]
    report: dict[str, Any]

    @property
    def events(self) -> list[Event]:
        lines = (self.path / "events.jsonl").read_text().splitlines()
        return [Event.from_json(json.loads(line)) for line in lines if line.strip()]

    @property
    def metrics(self) -> pa.Table:
        import pyarrow.parquet as pq

        return pq.read_table(self.path / "metrics.parquet")

    @property
    def complete(self) -> bool:
        return bool(self.run.get("complete"))

    @property
    def verdict(self) -> str:
        return str(self.report.get("verdict", "pass"))


def load_run(path: Path | str) -> RunDir:
    """Open a run directory; a folder that is not one is a one-line error."""
    path = Path(path)
    try:
        run = json.loads((path / "run.json").read_text())
        report = json.loads((path / "report.json").read_text())
    except FileNotFoundError as err:
        msg = f"{path} is not a run directory (no {Path(err.filename).name})"
        raise RunDirError(msg) from err
    except json.JSONDecodeError as err:
        msg = f"{path}: damaged run directory ({err.msg} at line {err.lineno})"
        raise RunDirError(msg) from err
    if not isinstance(run, dict) or run.get("format") != FORMAT_VERSION:
        msg = f"{path}: not a bagscope run directory of format {FORMAT_VERSION}"
        raise RunDirError(msg)
    return RunDir(path=path, run=run, report=report)
