"""The Python face of a run: ``bagscope.run(log, pipeline)`` gives a :class:`Run` to query in a
notebook, ``Run.save(dir)`` writes it as a run directory, ``bagscope.load_run(dir)`` reads one.

Everything goes through the same code as the command line (``session.run_pipeline``,
``rundir.write_run`` / ``rundir.load_run``), so a run made here and one made by ``replay run``
or ``replay batch`` are the same files, the same metrics and the same verdict::

    import bagscope

    run = bagscope.run("drive.mcap")                    # the analysis of `replay analyze`
    run.verdict, run.metrics.num_rows, run.events[:3]
    run.save("runs/drive")

    p = bagscope.api.pipeline(stages=[("topic_health", {"gap_factor": 4}), MyStage()])
    bagscope.run("drive.mcap", p, out="runs/custom")
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bagscope.errors import BagscopeError
from bagscope.interrupts import deferred_interrupt
from bagscope.pipeline.config import (
    ContractTopic,
    PipelineConfig,
    PipelineError,
    StageConfig,
    SyncConfig,
    build_stages,
    load_pipeline,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import pyarrow as pa

    from bagscope.pipeline.runner import RunResult
    from bagscope.pipeline.stage import Event, Stage
    from bagscope.replay.log import Log

__all__ = [
    "Pipeline",
    "Prepared",
    "Run",
    "execute",
    "load_run",
    "pipeline",
    "prepare",
    "resolve_pipeline",
    "run",
    "run_prepared",
]

_POLICIES = ("approximate", "exact", "nearest")


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A pipeline built in Python: a :class:`PipelineConfig` plus stage objects.

    A pipeline file can only name stages; Python can hand over the stage itself. ``items``
    keeps the order the stages run in: a :class:`StageConfig` (built from the config, like a
    file's ``[[stages]]``), a stage object (used as is: it runs once) or a stage class (a
    fresh instance per run, so the pipeline can be run again and again).
    """

    config: PipelineConfig
    items: tuple[StageConfig | Stage | type, ...] = ()

    @property
    def digest(self) -> str:
        return self.config.digest

    def build(self, *, defaults: Sequence[str] = ()) -> list[Stage]:
        """The stages of one run: ``defaults`` (built-in analyzers) then the items in order."""
        from dataclasses import replace

        from bagscope.builtins import BUILTIN_STAGES

        listed = tuple(i for i in self.items if isinstance(i, StageConfig))
        # built-ins and file stages are checked and built by the one builder the files use
        built = iter(
            build_stages(replace(self.config, stages=listed), builtins=BUILTIN_STAGES, defaults=())
        )
        head = build_stages(
            replace(self.config, stages=()), builtins=BUILTIN_STAGES, defaults=defaults
        )
        names = {i.name if isinstance(i, StageConfig) else _stage_name(i) for i in self.items}
        head = [s for s in head if s.name not in names]
        stages: list[Stage] = list(head)
        for item in self.items:
            if isinstance(item, StageConfig):
                stages.append(next(built))
            elif isinstance(item, type):
                stages.append(item())
            else:
                stages.append(item)
        # stage_timing reads the others' timings: it finishes last wherever it is listed
        stages.sort(key=lambda s: s.name == "stage_timing")
        return stages


def _stage_name(item: Stage | type) -> str:
    """A stage's name; a class's own ``name`` attribute if it has one, else the class's."""
    own = getattr(item, "name", None)
    if isinstance(own, str):
        return own
    return item.__name__ if isinstance(item, type) else str(own)


def _qualname(obj: object) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def pipeline(
    *,
    stages: Sequence[tuple[str, Mapping[str, Any]] | str | Stage | type] = (),
    sync: Sequence[str] | SyncConfig | None = None,
    policy: str = "nearest",
    slop: str | int | None = None,
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
    contract: Mapping[str, Mapping[str, Any]] | None = None,
    start: str | None = None,
    end: str | None = None,
    name: str = "python",
) -> Pipeline:
    """Build a pipeline in Python: what a pipeline file says, with stage objects allowed.

    ``stages`` items are ``"topic_health"``, ``("topic_health", {"gap_factor": 4})`` (a
    built-in, a plugin or ``module:Class`` with parameters), a stage object or a stage class.
    ``sync`` lists the topics to sync (the first is the reference) with ``policy`` and
    ``slop`` (``"50ms"`` or ns); ``thresholds`` and ``contract`` are the file's tables.
    Parameters are checked when the pipeline is run, before the log is read.
    """
    from bagscope.replay.timeparse import parse_duration

    if policy not in _POLICIES:
        msg = f"unknown sync policy {policy!r}; choose one of {', '.join(_POLICIES)}"
        raise PipelineError(msg)
    items: list[StageConfig | Stage | type] = []
    raw_stages: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in stages:
        if isinstance(entry, str | tuple):
            use, params = (entry, {}) if isinstance(entry, str) else entry
            stage_name = use.rpartition(":")[2] if ":" in use else use
            items.append(StageConfig(use=use, name=stage_name, params=dict(params)))
            raw_stages.append({"use": use, **params})
        else:
            stage_name = _stage_name(entry)
            items.append(entry)
            raw_stages.append({"use": _qualname(entry), "name": stage_name, "object": True})
        if stage_name in seen:
            msg = f"a stage named {stage_name!r} is already listed"
            raise PipelineError(msg)
        seen.add(stage_name)
    raw: dict[str, Any] = {"pipeline": {"name": name}}
    sync_config: SyncConfig | None
    if isinstance(sync, SyncConfig):
        sync_config = sync
    elif sync is not None:
        if isinstance(sync, str) or not sync:
            msg = "sync takes a non-empty list of topics (the first is the reference)"
            raise PipelineError(msg)
        slop_ns = parse_duration(slop) if isinstance(slop, str) else slop
        sync_config = SyncConfig(topics=tuple(sync), policy=policy, slop_ns=slop_ns)
    else:
        sync_config = None
    if sync_config is not None:
        raw["source"] = {"topics": list(sync_config.topics)}
        raw["sync"] = {"policy": sync_config.policy, "slop_ns": sync_config.slop_ns}
    for key, value in (("start", start), ("end", end)):
        if value is not None:
            raw.setdefault("source", {})[key] = value
    if raw_stages:
        raw["stages"] = raw_stages
    if thresholds:
        raw["thresholds"] = {k: dict(v) for k, v in thresholds.items()}
    if contract:
        raw["contract"] = {k: dict(v) for k, v in contract.items()}
    config = PipelineConfig(
        source=f"<{name}>",
        name=name,
        sync=sync_config,
        start=start,
        end=end,
        stages=tuple(i for i in items if isinstance(i, StageConfig)),
        thresholds=dict(raw.get("thresholds", {})),
        contract={t: ContractTopic(topic=t, **dict(c)) for t, c in (contract or {}).items()},
        raw=raw,
    )
    return Pipeline(config=config, items=tuple(items))


def resolve_pipeline(spec: Pipeline | PipelineConfig | Path | str | None) -> Pipeline:
    """Any way of naming a pipeline (None, a TOML path, a config, a built one) as a Pipeline."""
    if spec is None:
        return Pipeline(config=PipelineConfig())
    if isinstance(spec, Pipeline):
        return spec
    config = spec if isinstance(spec, PipelineConfig) else load_pipeline(spec)
    return Pipeline(config=config, items=config.stages)


def uses_analysis(spec: Pipeline, analysis: bool | None) -> bool:
    """Whether a run adds ``replay analyze``'s analyzers: asked, or a pipeline with no stages
    (then the file is thresholds and a contract for the analysis, as with ``analyze``)."""
    return analysis if analysis is not None else not spec.items


@dataclass(slots=True, kw_only=True)
class Run:
    """One run, in memory or read from a run directory.

    ``metrics`` is the long table of ``metrics.parquet`` (t_ns, stage, metric, value, topic,
    label); ``events`` the findings of ``events.jsonl``, in its order; ``verdict`` pass / warn /
    fail. ``run_dir`` is where it lives on disk (None until :meth:`save`).
    """

    metrics: pa.Table
    events: list[Event]
    verdict: str
    complete: bool
    pipeline: dict[str, Any]
    run_dir: Path | None = None
    result: RunResult | None = field(default=None, repr=False)

    @property
    def event_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("info", "warning", "error"), 0)
        for event in self.events:
            counts[event.severity] += 1
        return counts

    @property
    def report(self) -> dict[str, Any]:
        """report.json (checks, tables, figures): only a saved run has one."""
        if self.run_dir is None:
            msg = "this run is not saved yet; call save(dir) first"
            raise BagscopeError(msg)
        data: dict[str, Any] = json.loads((self.run_dir / "report.json").read_text())
        return data

    def save(self, out: Path | str, *, overwrite: bool = False, figures: bool = True) -> Path:
        """Write the run directory ``out`` (all or nothing); the run then lives there."""
        out = Path(out)
        if self.result is not None:
            from bagscope.pipeline.rundir import write_run
            from bagscope.viz.report import write_report

            self.run_dir = write_run(
                self.result,
                out,
                pipeline=self.pipeline,
                overwrite=overwrite,
                figures=figures,
                finish=write_report,
            )
            return self.run_dir
        if self.run_dir is None:  # pragma: no cover -- a Run is made from one or the other
            raise BagscopeError("nothing to save")
        self.run_dir = _copy_run(self.run_dir, out, overwrite=overwrite)
        return self.run_dir


def _copy_run(src: Path, out: Path, *, overwrite: bool) -> Path:
    """A loaded run saved elsewhere: copied beside ``out`` then renamed into place."""
    from bagscope.pipeline.rundir import RunDirError

    if out.exists() and not overwrite:
        msg = f"{out} already exists; give another directory or overwrite=True"
        raise RunDirError(msg)
    if out.resolve() == src.resolve():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with deferred_interrupt():
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """A pipeline made ready for one log: its stages (fresh), what to sync, and the window."""

    config: PipelineConfig
    stages: list[Stage]
    sync: SyncConfig | None
    start_ns: int | None
    end_ns: int | None


def prepare(
    log: Log,
    spec: Pipeline,
    *,
    analysis: bool | None = None,
    start: str | None = None,
    end: str | None = None,
) -> Prepared:
    """The stages, sync and window ``spec`` means on ``log``: what :func:`execute` runs, and
    what each time shard of a sharded batch run builds again for itself."""
    from bagscope.analyzers import DEFAULT_ANALYSIS
    from bagscope.pipeline.session import auto_sync, truth_topics, window_for

    config = spec.config
    full = uses_analysis(spec, analysis)
    if config.stages:
        from bagscope.pipeline.registry import check_plugins

        check_plugins()
    stages = spec.build(defaults=DEFAULT_ANALYSIS if full else ())
    if not stages:
        raise PipelineError(f"{config.source}: no stages to run")
    start_ns, end_ns = window_for(log, config, start=start, end=end)
    sync = config.sync
    if sync is None and full:
        truth = [t for t in truth_topics(log) if any(s.name == "detection" for s in stages)]
        sync = auto_sync(log, also=truth[:1])
    return Prepared(config=config, stages=stages, sync=sync, start_ns=start_ns, end_ns=end_ns)


def execute(
    log: Log,
    spec: Pipeline,
    *,
    analysis: bool | None = None,
    start: str | None = None,
    end: str | None = None,
    fail_fast: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Run ``spec`` over an open log: the one place the API and ``replay batch`` run a log."""
    ready = prepare(log, spec, analysis=analysis, start=start, end=end)
    return run_prepared(log, ready, fail_fast=fail_fast, progress=progress)


def run_prepared(
    log: Log,
    ready: Prepared,
    *,
    fail_fast: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """One read of ``log`` with what :func:`prepare` made ready."""
    from bagscope.pipeline.session import run_pipeline

    return run_pipeline(
        log,
        ready.config,
        ready.stages,
        sync=ready.sync,
        start_ns=ready.start_ns,
        end_ns=ready.end_ns,
        fail_fast=fail_fast,
        progress=progress,
    )


def run(
    log: Log | Path | str | Sequence[Path | str],
    pipeline: Pipeline | PipelineConfig | Path | str | None = None,
    *,
    out: Path | str | None = None,
    overwrite: bool = False,
    analysis: bool | None = None,
    start: str | None = None,
    end: str | None = None,
    fail_fast: bool = False,
    figures: bool = True,
    typestore: str | None = None,
    strict: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Run:
    """Run a pipeline over a log and return the :class:`Run`.

    ``log`` is a path (or several, read as one) or an open :class:`~bagscope.Log` (left
    open). ``pipeline`` is a TOML path, a :class:`PipelineConfig`, a :func:`pipeline`, or None:
    the analysis of ``replay analyze`` with every cloud synced with every image. A pipeline
    without stages is thresholds and a contract for that analysis; ``analysis=True`` adds the
    analyzers to a pipeline's own stages, ``False`` leaves them out. With ``out`` the run
    directory is written (as :meth:`Run.save`); otherwise the run stays in memory.
    ``start``/``end`` are offsets like ``--start``/``--end``.
    """
    from bagscope.pipeline.rundir import metrics_table, verdict_of
    from bagscope.replay.log import Log, open_log

    spec = resolve_pipeline(pipeline)
    if isinstance(log, Log):
        result = execute(
            log, spec, analysis=analysis, start=start, end=end, fail_fast=fail_fast,
            progress=progress,
        )  # fmt: skip
    else:
        paths = [log] if isinstance(log, str | Path) else list(log)
        with open_log(paths, typestore=typestore, strict=strict) as opened:
            result = execute(
                opened, spec, analysis=analysis, start=start, end=end, fail_fast=fail_fast,
                progress=progress,
            )  # fmt: skip
    # the order of events.jsonl, so a saved run and this one list them alike
    events = sorted(
        (e for res in result.results.values() for e in res.events),
        key=lambda e: (e.t_ns, e.stage, e.kind),
    )
    outcome = Run(
        metrics=metrics_table(result),
        events=events,
        verdict=verdict_of(events),
        complete=result.complete,
        pipeline=spec.config.to_json(),
        result=result,
    )
    if out is not None:
        outcome.save(out, overwrite=overwrite, figures=figures)
    return outcome


def load_run(path: Path | str) -> Run:
    """Read a run directory (written by any face of bagscope) as a :class:`Run`."""
    from bagscope.pipeline.rundir import load_run as open_run

    found = open_run(path)
    return Run(
        metrics=found.metrics,
        events=found.events,
        verdict=found.verdict,
        complete=found.complete,
        pipeline=dict(found.run.get("pipeline") or {}),
        run_dir=found.path,
    )
