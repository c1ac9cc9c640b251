"""The work a batch hands to an engine: module-level functions of one picklable argument, so
that a process pool and Ray run the very same code.

- :func:`run_job` runs one log and writes its run directory. Asked to shard a long log, it
  only plans: it returns how many shards the log has (or runs it whole when it cannot or
  need not be split).
- :func:`run_shard_job` runs one time shard and returns its stages' states.
- :func:`run_merge_job` runs the whole-log pass, merges the shards' states, and writes the
  run directory - the same files an unsharded run writes.

Every task opens the log and builds the pipeline itself: nothing but paths and states
crosses to a worker. None raises for a bad log; each returns ``{"log", "error"}`` instead.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bagscope.batch.engine import one_line

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from bagscope.api import Pipeline, Prepared
    from bagscope.pipeline.runner import RunResult
    from bagscope.pipeline.shards import ShardOutput, ShardPlan
    from bagscope.replay.log import Log

__all__ = [
    "Job",
    "MergeJob",
    "ShardJob",
    "run_job",
    "run_merge_job",
    "run_shard_job",
    "set_progress_queue",
]

# Where a worker tells the batch how far its run is: (task key, frames so far). Set in each
# worker by an engine that shows live progress (the process pool); None: nothing is sent.
_progress_queue: Any = None


def set_progress_queue(queue: Any) -> None:
    """Called in a worker as it starts: ``queue.put_nowait`` takes (task key, frames)."""
    global _progress_queue  # noqa: PLW0603 -- one worker process, one queue, set once at start
    _progress_queue = queue


def _reporter(key: str) -> Callable[[int, int], None] | None:
    queue = _progress_queue
    if queue is None:
        return None

    def report(_t_ns: int, frames: int) -> None:
        with contextlib.suppress(Exception):  # progress is a courtesy: never fail a run on it
            queue.put_nowait((key, frames))

    return report


def shard_key(log: str, index: int) -> str:
    """The progress key of one shard of ``log`` (a whole log's key is its path)."""
    return f"{log}#{index}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One log to run: everything a worker needs, picklable."""

    log: str  # as the user gave it: the key of its outcome, failures.jsonl and the log column
    run_dir: str
    pipeline: str | Pipeline | None  # a TOML path, or one built in Python (pickled over)
    path: str = ""  # the log, absolute: a worker elsewhere (Ray) has another working directory
    figures: bool = True
    typestore: str | None = None
    msg_paths: tuple[str, ...] = ()
    strict: bool = False
    shard_ns: int | None = None  # split a log longer than this into time shards


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardJob:
    """Shard ``index`` of ``count`` of a job's log."""

    job: Job
    index: int
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeJob:
    """A sharded log's last step: every shard's output, in any order."""

    job: Job
    shards: tuple[ShardOutput, ...]


@contextlib.contextmanager
def _opened(job: Job) -> Iterator[tuple[Log, Pipeline, Prepared]]:
    """A job's log opened and its pipeline prepared, as every task needs them."""
    from bagscope.api import prepare, resolve_pipeline
    from bagscope.replay.log import open_log

    spec = resolve_pipeline(job.pipeline)
    with open_log(
        [Path(job.path or job.log)],
        typestore=job.typestore,
        msg_paths=job.msg_paths,
        strict=job.strict,
    ) as log:
        yield log, spec, prepare(log, spec)


def _plan(log: Log, ready: Prepared, shard_ns: int) -> ShardPlan:
    from bagscope.pipeline.shards import plan_shards

    info = log.info()
    start = ready.start_ns if ready.start_ns is not None else info.start_ns
    end = ready.end_ns if ready.end_ns is not None else info.end_ns + 1
    return plan_shards(ready.stages, start_ns=start, end_ns=end, shard_ns=shard_ns)


def _write(job: Job, spec: Pipeline, result: RunResult) -> dict[str, Any]:
    from bagscope.pipeline.rundir import write_run
    from bagscope.viz.report import write_report

    if result.interrupted:
        raise KeyboardInterrupt
    write_run(
        result,
        Path(job.run_dir),
        pipeline=spec.config.to_json(),
        overwrite=True,  # only an unusable run dir is ever replaced (the caller checks)
        figures=job.figures,
        finish=write_report,
    )
    return {"log": job.log, "frames": result.frames}


def _guarded(log: str, work: Callable[[], Any]) -> Any:
    """``work()``, or anything but an interrupt as the job's one-line error outcome."""
    try:
        return work()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        return {"log": log, "error": one_line(exc)}


def run_job(job: Job) -> dict[str, Any]:
    """Run one log and write its run directory, or (``shard_ns``) plan its shards.

    Returns ``{"log", "frames"}``, ``{"log", "shards"}`` (the count) when the log is to be
    sharded, or ``{"log", "error"}``. An interrupted run is not written (it could not be
    resumed from anyway).
    """

    def work() -> dict[str, Any]:
        from bagscope.api import run_prepared

        with _opened(job) as (log, spec, ready):
            if job.shard_ns is not None:
                plan = _plan(log, ready, job.shard_ns)
                if plan.split:
                    return {"log": job.log, "shards": len(plan.windows)}
            result = run_prepared(log, ready, progress=_reporter(job.log))
        return _write(job, spec, result)

    result: dict[str, Any] = _guarded(job.log, work)
    return result


def _policy_args(log: Log, ready: Prepared) -> dict[str, Any]:
    from bagscope.pipeline.session import sync_policy

    return {
        "sync": sync_policy(log, ready.sync),
        "start_ns": ready.start_ns,
        "end_ns": ready.end_ns,
        "stamp_source": ready.sync.stamp if ready.sync is not None else "header",
        "contract": ready.config.contract_json(),
    }


def run_shard_job(task: ShardJob) -> ShardOutput | dict[str, Any]:
    """One shard's states (or the job's error outcome)."""

    def work() -> ShardOutput:
        from bagscope.pipeline.shards import ShardError, run_shard

        assert task.job.shard_ns is not None
        with _opened(task.job) as (log, _, ready):
            plan = _plan(log, ready, task.job.shard_ns)
            if len(plan.windows) != task.count:
                msg = f"the log now has {len(plan.windows)} shards, not {task.count}"
                raise ShardError(msg)
            return run_shard(
                log,
                ready.stages,
                plan,
                index=task.index,
                progress=_reporter(shard_key(task.job.log, task.index)),
                **_policy_args(log, ready),
            )

    result: ShardOutput | dict[str, Any] = _guarded(task.job.log, work)
    return result


def run_merge_job(task: MergeJob) -> dict[str, Any]:
    """The whole-log pass and the merge; writes the run directory as :func:`run_job` does."""

    def work() -> dict[str, Any]:
        from bagscope.api import prepare
        from bagscope.pipeline.shards import merge_run, run_whole

        job = task.job
        assert job.shard_ns is not None
        with _opened(job) as (log, spec, ready):
            plan = _plan(log, ready, job.shard_ns)
            args = _policy_args(log, ready)
            whole = run_whole(log, ready.stages, plan, **args)
            fresh = prepare(log, spec).stages  # set up anew, then given the shards' states
            result = merge_run(log, fresh, plan, whole=whole, shards=task.shards, **args)
            result.sharding = {
                "shard_ns": job.shard_ns,
                "shards": [list(w) for w in plan.windows],
                "sharded": list(plan.sharded),
                "whole": list(plan.whole),
                "at_merge": list(plan.at_merge),
            }
        return _write(job, spec, result)

    result: dict[str, Any] = _guarded(task.job.log, work)
    return result
