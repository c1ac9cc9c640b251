"""Run one pipeline over many logs: a run directory per log, resumable, then one table of all.

``replay batch`` and ``bagscope.batch(...)`` lay out ``--out`` as::

    runs/<log name>-<digest8>/   one run directory per log (digest8: of the log's path)
    failures.jsonl               {"log", "error"} per log that could not be run this time
    metrics.parquet              every run's metrics with a ``log`` column
    events.parquet               every run's events with a ``log`` column
    summary.html                 aggregate figures, then one line per log, worst first
    .lock                        the pid of the batch writing here (refuses a second one)

A log whose run directory is complete and was made from the same log bytes (``log_digest``)
by the same pipeline (its digest) is not run again, so a batch cut short is finished by
running the same command again. What is engine-independent lives here; the process pool is
:mod:`bagscope.batch.local`.

``bagscope.batch`` is this module and can be called: ``bagscope.batch(logs, out=...)`` is
:func:`run_batch`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import sys
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bagscope.errors import BagscopeError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    import pyarrow as pa

    from bagscope.api import Pipeline
    from bagscope.batch.engine import Engine
    from bagscope.batch.tasks import Job
    from bagscope.pipeline.config import PipelineConfig

__all__ = [
    "BatchError",
    "BatchLock",
    "BatchResult",
    "discover_logs",
    "run_batch",
    "run_dir_name",
]

LOG_SUFFIXES = (".bag", ".mcap", ".db3")
_GLOB_CHARS = re.compile(r"[*?\[]")


class BatchError(BagscopeError):
    """A batch that cannot start: no logs, a glob matching nothing, ``--out`` taken."""


# -- which logs ------------------------------------------------------------------------------
def _is_ros2_dir(path: Path) -> bool:
    return path.is_dir() and (path / "metadata.yaml").is_file()


def _logs_in(folder: Path) -> Iterator[Path]:
    """Logs under ``folder``: rosbag2 directories whole, other .bag/.mcap/.db3 files."""
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs.sort()
        for d in list(dirs):
            if _is_ros2_dir(here / d):
                dirs.remove(d)  # its files are part of it, not logs of their own
                yield here / d
        for name in sorted(files):
            if name.endswith(LOG_SUFFIXES):
                yield here / name


def discover_logs(specs: Iterable[Path | str]) -> list[Path]:
    """The logs ``specs`` name, in order, each once.

    A file is a log; a rosbag2 directory (with metadata.yaml) is one log; another directory
    is searched for logs; a glob is expanded. A glob matching nothing, a missing path or a
    folder without logs is a one-line error, before any work.
    """
    found: list[Path] = []
    for spec in specs:
        text = str(spec)
        path = Path(text)
        if path.exists():
            candidates = [path]
        elif _GLOB_CHARS.search(text):
            candidates = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
            if not candidates:
                msg = f"no log matches {text!r}"
                raise BatchError(msg)
        else:
            msg = f"{text} does not exist"
            raise BatchError(msg)
        for candidate in candidates:
            if candidate.is_dir() and not _is_ros2_dir(candidate):
                inside = list(_logs_in(candidate))
                if not inside and len(candidates) == 1:
                    msg = f"no .bag, .mcap, .db3 or rosbag2 directory in {candidate}"
                    raise BatchError(msg)
                found.extend(inside)
            else:
                found.append(candidate)
    unique: dict[Path, Path] = {}
    for log in found:
        unique.setdefault(log.resolve(), log)
    if not unique:
        raise BatchError("no logs to run")
    return list(unique.values())


def run_dir_name(log: Path) -> str:
    """``<safe name>-<digest8>``: readable, and distinct for same-named logs in two folders."""
    stem = log.name
    for suffix in LOG_SUFFIXES:
        stem = stem.removesuffix(suffix)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "log"
    digest = hashlib.sha256(str(log.resolve()).encode()).hexdigest()[:8]
    return f"{safe}-{digest}"


def is_done(run_dir: Path, *, log_digest: str, pipeline_digest: str) -> bool:
    """A run directory this batch would write again identically: complete, same log bytes,
    same pipeline."""
    try:
        run = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(run, dict)
        and run.get("complete") is True
        and run.get("log_digest") == log_digest
        and (run.get("pipeline") or {}).get("digest") == pipeline_digest
        and (run_dir / "report.json").is_file()
    )


# -- one batch at a time per --out -----------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class BatchLock:
    """``<out>/.lock`` created exclusively and holding our pid; a dead pid's lock is taken."""

    def __init__(self, out: Path) -> None:
        self.path = out / ".lock"
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = self._owner()
                if pid is not None and pid != os.getpid() and _alive(pid):
                    msg = (
                        f"another batch (pid {pid}) is writing {self.path.parent}; wait for it, "
                        f"or remove {self.path} if it is gone"
                    )
                    raise BatchError(msg) from None
                self.path.unlink(missing_ok=True)  # stale: its batch died
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            self.held = True
            return
        msg = f"cannot take the lock {self.path}"
        raise BatchError(msg)

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> BatchLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


# -- the outcome -----------------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class BatchResult:
    """What a batch did: per log its run directory (or its error), and what was skipped."""

    out: Path
    logs: list[Path]
    run_dirs: dict[str, Path] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` a temporary file beside ``path``, then rename it into place."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_EVENT_FIELDS = ("t_ns", "end_ns", "topic", "kind", "severity", "message", "evidence", "stage")


def _combined(result: BatchResult) -> tuple[pa.Table, pa.Table]:
    """All runs' metrics and events, each row with the ``log`` it came from (as given)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    metric_parts = []
    event_rows: dict[str, list[Any]] = {k: [] for k in (*_EVENT_FIELDS, "log")}
    for log in (str(p) for p in result.logs):
        run_dir = result.run_dirs.get(log)
        if run_dir is None:
            continue
        table = pq.read_table(run_dir / "metrics.parquet")
        for name in table.column_names:  # one dictionary per run: unify as plain strings
            if pa.types.is_dictionary(table.schema.field(name).type):
                column = table.column(name).cast(pa.string())
                table = table.set_column(table.schema.get_field_index(name), name, column)
        metric_parts.append(table.append_column("log", pa.array([log] * table.num_rows)))
        for line in (run_dir / "events.jsonl").read_text().splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            for key in _EVENT_FIELDS:
                value = event.get(key)
                event_rows[key].append(json.dumps(value) if key == "evidence" else value)
            event_rows["log"].append(log)
    metrics_schema = pa.schema(
        [
            ("t_ns", pa.int64()),
            ("stage", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
            ("topic", pa.string()),
            ("label", pa.string()),
            ("log", pa.string()),
        ]
    )
    metrics = (
        pa.concat_tables([t.cast(metrics_schema) for t in metric_parts])
        if metric_parts
        else metrics_schema.empty_table()
    )
    events_schema = pa.schema(
        [
            ("t_ns", pa.int64()),
            ("end_ns", pa.int64()),
            ("topic", pa.string()),
            ("kind", pa.string()),
            ("severity", pa.string()),
            ("message", pa.string()),
            ("evidence", pa.string()),  # JSON text: every stage has its own keys
            ("stage", pa.string()),
            ("log", pa.string()),
        ]
    )
    events = pa.table(event_rows, schema=events_schema)
    return metrics, events


def _write_outputs(result: BatchResult) -> None:
    import pyarrow.parquet as pq

    metrics, events = _combined(result)
    _atomic_write(result.out / "metrics.parquet", lambda p: pq.write_table(metrics, p))
    _atomic_write(result.out / "events.parquet", lambda p: pq.write_table(events, p))
    from bagscope.batch.summary import summary_html

    page = summary_html(result)
    _atomic_write(result.out / "summary.html", lambda p: p.write_text(page, encoding="utf-8"))


def _clean_stale(runs: Path) -> None:
    """Temporary folders of a batch that was killed mid-write (we hold the lock: ours)."""
    import shutil

    if runs.is_dir():
        for tmp in runs.glob(".*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)


# -- the batch -------------------------------------------------------------------------------
def _shard_ns(length: str | int | None) -> int | None:
    """``--shard-length`` as ns: a duration (``"60s"``) or ns; None or 0 for no shards."""
    if length is None:
        return None
    if isinstance(length, str):
        from bagscope.replay.errors import DurationError
        from bagscope.replay.timeparse import parse_duration

        try:
            length = parse_duration(length)
        except DurationError as err:
            msg = f"--shard-length: {err}"
            raise BatchError(msg) from err
    if length < 0:
        msg = f"--shard-length must be positive, not {length} ns"
        raise BatchError(msg)
    return length or None


def run_batch(
    logs: Sequence[Path | str],
    *,
    out: Path | str,
    pipeline: Pipeline | PipelineConfig | Path | str | None = None,
    workers: int | None = None,
    figures: bool = True,
    typestore: str | None = None,
    msg_paths: Sequence[Path | str] = (),
    strict: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    shard_length: str | int | None = None,
    on_shard: Callable[[str, int, int], None] | None = None,
    engine: str = "local",
    address: str | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> BatchResult:
    """Run ``pipeline`` (a TOML file; None: ``replay analyze``'s analysis) over ``logs``.

    ``logs`` are files, directories or globs (:func:`discover_logs`). Logs already done are
    skipped; a log that fails is recorded in ``failures.jsonl`` and the batch goes on.
    ``workers`` defaults to the number of cores. ``on_start(to_run, skipped)`` and
    ``on_log(outcome)`` let a caller show progress. Problems found before any work (no logs,
    a bad pipeline file, another batch on ``out``) raise :class:`BatchError` /
    :class:`~bagscope.pipeline.config.PipelineError`.

    ``shard_length`` (``"60s"`` or ns) splits each log longer than that into time shards run
    in parallel and merged into the run an unsharded run gives (:mod:`bagscope.pipeline.
    shards`); ``on_shard(log, done, count)`` is told of each shard that ends.

    ``engine`` is where the tasks run: ``"local"``, a process pool on this machine, or
    ``"ray"`` (:mod:`bagscope.batch.ray_engine`), a Ray instance started for the batch, or
    the existing cluster at ``address``. Ray missing, or nothing answering at ``address``,
    is a :class:`BatchError` before anything is written.

    ``on_frames(total)`` is told the frames made so far, as the workers go (the process pool
    reports while a log runs; Ray only when a log ends).
    """
    from bagscope.api import resolve_pipeline
    from bagscope.batch.local import LocalEngine
    from bagscope.batch.schedule import drive, shard_folder
    from bagscope.batch.tasks import Job
    from bagscope.pipeline.rundir import log_digest

    out = Path(out)
    found = discover_logs(logs)
    spec = resolve_pipeline(pipeline)  # checked before any log is read
    if spec.items:
        from bagscope.builtins import BUILTIN_STAGES
        from bagscope.pipeline.config import build_stages

        build_stages(spec.config, builtins=BUILTIN_STAGES)  # a bad stage parameter, now
    digest = spec.digest
    shard_ns = _shard_ns(shard_length)
    workers = workers if workers is not None else os.cpu_count() or 1
    if workers < 1:
        msg = f"--workers must be at least 1, not {workers}"
        raise BatchError(msg)

    if engine not in ("local", "ray"):
        msg = f"--engine must be local or ray, not {engine!r}"
        raise BatchError(msg)
    if address is not None and engine != "ray":
        msg = "--address names a Ray cluster: it needs --engine ray"
        raise BatchError(msg)
    if engine == "ray":
        from bagscope.batch.ray_engine import check_ray

        check_ray(address)  # before the lock: a batch that cannot run writes nothing

    def make_engine(workers: int) -> Engine:
        if engine == "ray":
            from bagscope.batch.ray_engine import RayEngine

            return RayEngine(workers, address)
        if on_frames is None:
            return LocalEngine(workers)
        so_far: dict[str, int] = {}  # per task (a log, or one shard of it): its latest count

        def progress(key: str, frames: int) -> None:
            so_far[key] = max(frames, so_far.get(key, 0))
            on_frames(sum(so_far.values()))

        return LocalEngine(workers, on_progress=progress)

    result = BatchResult(out=out, logs=found)
    with BatchLock(out):
        runs = out / "runs"
        runs.mkdir(exist_ok=True)
        _clean_stale(runs)
        jobs: list[Job] = []
        planned: dict[str, Path] = {}  # log -> its run directory, as the caller named --out
        for log in found:
            run_dir = runs / run_dir_name(log)
            try:
                done = is_done(run_dir, log_digest=log_digest([log]), pipeline_digest=digest)
            except OSError:
                done = False  # unreadable: the worker says why
            if done:
                result.skipped.append(str(log))
                result.run_dirs[str(log)] = run_dir
                continue
            planned[str(log)] = run_dir
            jobs.append(
                Job(
                    log=str(log),
                    path=str(log.resolve()),
                    run_dir=str(run_dir.resolve()),
                    pipeline=str(pipeline) if isinstance(pipeline, str | Path) else spec,
                    figures=figures,
                    typestore=typestore,
                    msg_paths=tuple(str(p) for p in msg_paths),
                    strict=strict,
                    shard_ns=shard_ns,
                )
            )
        if on_start is not None:
            on_start(len(jobs), len(result.skipped))
        failures_path = out / "failures.jsonl"
        failures_path.write_text("")
        with failures_path.open("a", encoding="utf-8") as failures:

            def record(outcome: dict[str, Any]) -> None:
                log = str(outcome["log"])
                if "error" in outcome:
                    result.failures[log] = str(outcome["error"])
                    failures.write(json.dumps({"log": log, "error": outcome["error"]}) + "\n")
                    failures.flush()
                else:
                    result.run_dirs[log] = planned[log]
                    result.ran.append(log)
                if on_log is not None:
                    on_log(outcome)

            def folders(job: Job) -> Path:
                return shard_folder(
                    job, log_digest=log_digest([Path(job.path)]), pipeline_digest=digest
                )

            with make_engine(workers) as pool:
                drive(pool, jobs, on_done=record, folders=folders, on_shard=on_shard)
        _write_outputs(result)
    return result


class _CallableModule(types.ModuleType):
    """Lets ``bagscope.batch(...)`` run a batch while ``bagscope.batch`` stays this package."""

    def __call__(self, *args: Any, **kwargs: Any) -> BatchResult:
        return run_batch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
# ``bagscope.batch`` resolves (lazily) to ``bagscope.batch.batch``: the module itself, which the
# import system also binds as the package attribute, so the name means one thing either way.
batch = sys.modules[__name__]
