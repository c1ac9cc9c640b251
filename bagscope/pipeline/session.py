"""A pipeline file applied to one log: its window, its sync policy, and the run.

This is the glue every face shares - ``replay run``, ``replay analyze`` and the Python API -
so that a pipeline file means the same thing wherever it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bagscope.pipeline.config import SyncConfig
from bagscope.pipeline.runner import run_stages

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from bagscope.pipeline.config import PipelineConfig
    from bagscope.pipeline.runner import RunResult
    from bagscope.pipeline.stage import Stage
    from bagscope.replay.log import Log
    from bagscope.replay.sync import SyncPolicy

__all__ = ["auto_sync", "run_pipeline", "sync_policy", "truth_topics", "window", "window_for"]

_MIN_AUTO_SLOP_NS = 50_000_000


def auto_sync(log: Log, *, also: Sequence[str] = ()) -> SyncConfig | None:
    """What ``analyze`` syncs when the pipeline file does not say: every point-cloud topic and
    every image topic (and the topics in ``also``, e.g. ground truth), one frame per sweep of
    the first cloud topic (``nearest``).

    The slop is the slowest partner's period (at least 50 ms): a partner is always expected
    within one of its own periods of a sweep. None when the log has no cloud, or nothing to
    sync it with (no frames; the message-level analyzers still run).
    """
    from bagscope.replay.decode import types_in_slot

    clouds, images = types_in_slot("cloud"), types_in_slot("image")
    info = log.info()
    extra = {log.resolve_topic(t) for t in also}
    cloud_topics = [t for t in info.topics if t.msgtype in clouds and t.count > 1]
    others = [t for t in info.topics if (t.msgtype in images and t.count > 1) or t.name in extra]
    if not cloud_topics or not others:
        return None  # clouds alone (a lidar and radars) are not a camera + lidar frame
    partners = [*cloud_topics[1:], *others]
    periods = [round(1e9 / t.rate_hz) for t in partners if t.rate_hz]
    slop = max([_MIN_AUTO_SLOP_NS, *periods])
    topics = tuple(t.name for t in (cloud_topics[0], *partners))
    return SyncConfig(topics=topics, policy="nearest", slop_ns=slop)


def truth_topics(log: Log) -> list[str]:
    """Topics of ground-truth boxes (``vision_msgs/Detection3DArray``), as recorded."""
    kinds = {"vision_msgs/msg/Detection3DArray", "vision_msgs/Detection3DArray"}
    return [t.name for t in log.info().topics if t.msgtype in kinds and t.count]


def sync_policy(log: Log, sync: SyncConfig | None) -> SyncPolicy[Any] | None:
    """The policy a sync section asks for, with its topics checked against the log."""
    if sync is None:
        return None
    from bagscope.replay.sync import make_policy

    topics = [log.resolve_topic(t) for t in sync.topics]
    return make_policy(sync.policy, topics, slop_ns=sync.slop_ns, queue_size=sync.queue_size)


def window(log: Log, config: PipelineConfig) -> tuple[int | None, int | None]:
    """The file's ``start``/``end`` as absolute ns against this log (errors name its extent)."""
    if config.start is None and config.end is None:
        return None, None
    from bagscope.replay.timeparse import resolve_window

    info = log.info()
    return resolve_window(
        config.start, config.end, log_start_ns=info.start_ns, log_end_ns=info.end_ns
    )


def window_for(
    log: Log, config: PipelineConfig, *, start: str | None, end: str | None
) -> tuple[int | None, int | None]:
    """``start``/``end`` as typed (``--start``/``--end``) win over the pipeline's window; as
    absolute ns against this log."""
    if start is None and end is None:
        return window(log, config)
    from bagscope.replay.timeparse import resolve_window

    info = log.info()
    return resolve_window(start, end, log_start_ns=info.start_ns, log_end_ns=info.end_ns)


def run_pipeline(
    log: Log,
    config: PipelineConfig,
    stages: Sequence[Stage],
    *,
    sync: SyncConfig | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    fail_fast: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Run ``stages`` over ``log`` as ``config`` says (``sync`` overrides the file's)."""
    chosen = sync if sync is not None else config.sync
    policy = sync_policy(log, chosen)
    return run_stages(
        log,
        stages,
        sync=policy,
        start_ns=start_ns,
        end_ns=end_ns,
        stamp_source=chosen.stamp if chosen is not None else "header",  # type: ignore[arg-type]
        contract=config.contract_json(),
        fail_fast=fail_fast,
        progress=progress,
    )
