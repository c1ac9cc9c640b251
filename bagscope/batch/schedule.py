"""The order a batch's tasks run in: every log at once, a sharded log's shards as soon as its
plan is known, its merge once the last shard is in.

Shard outputs are kept under ``runs/.shards/<run name>/<key>/`` (written atomically, keyed by
the log's bytes, the pipeline and the shard length), so a batch cut short resumes with the
shards it had finished; they are removed once the log's run directory is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bagscope.batch.engine import one_line
from bagscope.batch.tasks import Job, MergeJob, ShardJob, run_job, run_merge_job, run_shard_job

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from bagscope.batch.engine import Engine
    from bagscope.pipeline.shards import ShardOutput

__all__ = ["drive", "shard_folder"]

SHARDS_FOLDER = ".shards"


def shard_folder(job: Job, *, log_digest: str, pipeline_digest: str) -> Path:
    """Where a job's finished shards wait for its merge (one key per log, pipeline, length)."""
    key = hashlib.sha256(f"{log_digest}|{pipeline_digest}|{job.shard_ns}".encode()).hexdigest()
    run_dir = Path(job.run_dir)
    return run_dir.parent / SHARDS_FOLDER / run_dir.name / key[:16]


def _load(path: Path) -> ShardOutput | None:
    try:
        with path.open("rb") as fh:
            value: ShardOutput = pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ValueError):
        return None
    return value


def _store(folder: Path, output: ShardOutput) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".shard.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(output, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(name, folder / f"{output.index}.pkl")
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _discard(folder: Path) -> None:
    """A merged log's kept shards, and ``.shards`` itself once no other log has any."""
    shutil.rmtree(folder.parent, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.parent.rmdir()


@dataclass(slots=True)
class _Sharded:
    """One log being run in shards."""

    job: Job
    folder: Path | None
    count: int
    outputs: dict[int, ShardOutput] = field(default_factory=dict)
    failed: str = ""


def drive(
    engine: Engine,
    jobs: Sequence[Job],
    *,
    on_done: Callable[[dict[str, Any]], None],
    folders: Callable[[Job], Path | None] = lambda _: None,
    on_shard: Callable[[str, int, int], None] | None = None,
) -> None:
    """Run every job on ``engine``; ``on_done`` gets each log's outcome as it ends.

    ``folders(job)`` says where a sharded job's shards are kept (None: not kept);
    ``on_shard(log, done, count)`` is told of each shard that ends.
    """
    tickets: dict[int, tuple[str, Any]] = {}
    for job in jobs:
        tickets[engine.submit(run_job, job)] = ("job", job)

    def merge(state: _Sharded) -> None:
        outputs = tuple(state.outputs[i] for i in range(state.count))
        tickets[engine.submit(run_merge_job, MergeJob(job=state.job, shards=outputs))] = (
            "merge",
            state,
        )

    def shard_done(state: _Sharded, output: ShardOutput) -> None:
        state.outputs[output.index] = output
        if on_shard is not None:
            on_shard(state.job.log, len(state.outputs), state.count)
        if len(state.outputs) == state.count and not state.failed:
            merge(state)

    def planned(job: Job, count: int) -> None:
        state = _Sharded(job=job, folder=folders(job), count=count)
        for index in range(count):
            kept = _load(state.folder / f"{index}.pkl") if state.folder is not None else None
            if kept is not None and kept.index == index:
                shard_done(state, kept)
            else:
                task = ShardJob(job=job, index=index, count=count)
                tickets[engine.submit(run_shard_job, task)] = ("shard", state)

    while tickets:
        for outcome in engine.next_done():
            kind, what = tickets.pop(outcome.ticket)
            log = what.job.log if kind != "job" else what.log
            value = outcome.value
            if outcome.error is not None:
                value = {"log": log, "error": one_line(outcome.error)}
            if kind == "shard":
                state: _Sharded = what
                if isinstance(value, dict):  # this shard failed: the log fails, once
                    if not state.failed:
                        state.failed = str(value.get("error", "a shard failed"))
                        on_done({"log": log, "error": state.failed})
                    continue
                if state.folder is not None:
                    _store(state.folder, value)
                shard_done(state, value)
            elif kind == "job" and "shards" in value:
                planned(what, int(value["shards"]))
            else:
                if kind == "merge" and "error" not in value and what.folder is not None:
                    _discard(what.folder)
                on_done(value)
