"""Pipeline files (TOML): what to sync, which stages to run with which parameters, thresholds,
and the recording contract - one file that drives ``run``, ``analyze`` and later ``view``,
``render`` and ``batch``::

    [source]
    topics = ["/lidar/points", "/camera/image/compressed"]  # synced; the first is the reference
    start = "2s"          # optional window, as --start/--end
    end = "30s"

    [sync]
    policy = "nearest"    # approximate | exact | nearest
    slop = "50ms"
    queue_size = 100

    [[stages]]
    use = "topic_health"  # a built-in, a bagscope.stages plugin, or module:Class
    gap_factor = 4        # every other key is a parameter of the stage

    [thresholds.latency]  # parameters for a stage by name (also the defaults of `analyze`)
    drift_ppm = 100

    [contract."/lidar/points"]
    type = "sensor_msgs/msg/PointCloud2"
    min_rate_hz = 9.5

Everything is checked before any log is read, and every error names the file, the line and
the key (``p.toml:12: stages[2].gap_factr: ...``), because a typo found after an hour of
replay is an hour lost.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import inspect
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bagscope.errors import BagscopeError
from bagscope.pipeline.registry import StageSpecError, resolve_stage
from bagscope.replay.errors import DurationError
from bagscope.replay.timeparse import parse_duration

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bagscope.pipeline.stage import Stage

__all__ = [
    "ContractTopic",
    "PipelineConfig",
    "PipelineError",
    "StageConfig",
    "SyncConfig",
    "build_stages",
    "load_pipeline",
    "parse_pipeline",
]

_TOP_KEYS = ("pipeline", "source", "sync", "stages", "thresholds", "contract")
_SOURCE_KEYS = ("topics", "start", "end", "stamp")
_SYNC_KEYS = ("policy", "slop", "queue_size")
_POLICIES = ("approximate", "exact", "nearest")
_CONTRACT_KEYS = ("type", "min_rate_hz", "max_rate_hz", "required")


class PipelineError(BagscopeError):
    """A pipeline file that cannot be used: its message names the file, line and key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncConfig:
    topics: tuple[str, ...]
    policy: str = "approximate"
    slop_ns: int | None = None
    queue_size: int = 100
    stamp: str = "header"


@dataclass(frozen=True, slots=True, kw_only=True)
class StageConfig:
    """One ``[[stages]]`` entry: what to build (``use``), its name and its parameters."""

    use: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    line: int | None = None
    # False when the file gives no name: a module:Class stage then keeps its own ``name``.
    named: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractTopic:
    topic: str
    type: str | None = None
    min_rate_hz: float | None = None
    max_rate_hz: float | None = None
    required: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "min_rate_hz": self.min_rate_hz,
            "max_rate_hz": self.max_rate_hz,
            "required": self.required,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineConfig:
    """A validated pipeline file. ``raw`` is the file's content, kept for ``run.json``."""

    source: str = "<defaults>"
    name: str = "default"
    sync: SyncConfig | None = None
    start: str | None = None
    end: str | None = None
    stages: tuple[StageConfig, ...] = ()
    thresholds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    contract: Mapping[str, ContractTopic] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""

    @property
    def digest(self) -> str:
        """Of the parsed content (not the text): comments and layout do not change it."""
        canonical = json.dumps(self.raw, sort_keys=True, default=str)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"file": self.source, "name": self.name, "digest": self.digest, "config": self.raw}

    def contract_json(self) -> dict[str, dict[str, Any]]:
        return {topic: c.to_json() for topic, c in self.contract.items()}

    def params_for(self, stage_name: str) -> dict[str, Any]:
        """``[thresholds.<stage>]`` for a stage (the defaults of ``analyze``'s analyzers)."""
        return dict(self.thresholds.get(stage_name, {}))


class _Locator:
    """Finds the line of a key in the TOML text (tomllib keeps no positions).

    Good enough for the files people write: headers ``[a.b]`` / ``[[a]]`` and ``key =`` lines;
    when a key cannot be placed, the line of its table is given instead.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def _key_line(self, key: str, begin: int) -> int | None:
        pattern = re.compile(
            rf"^\s*(\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})\s*[=.]"
        )
        for i in range(begin, len(self.lines)):
            line = self.lines[i]
            if i > begin and self._HEADER.match(line):
                return None
            if pattern.match(line):
                return i + 1
        return None

    def _header_line(self, name: str, nth: int | None) -> int | None:
        seen = -1
        for i, line in enumerate(self.lines):
            m = self._HEADER.match(line)
            if m and _unquote_dotted(m.group(2)) == name:
                seen += 1
                if nth is None or seen == nth:
                    return i
        return None

    def line(self, path: Sequence[str | int]) -> int | None:
        """1-based line of ``path`` such as ("stages", 1, "slop"), or None."""
        parts = list(path)
        # the deepest table header that matches a prefix of the path
        for cut in range(len(parts), 0, -1):
            prefix = parts[:cut]
            nth = prefix[-1] if isinstance(prefix[-1], int) else None
            names = [str(p) for p in prefix if not isinstance(p, int)]
            header = self._header_line(".".join(names), nth)
            if header is None:
                continue
            rest = [p for p in parts[cut:] if not isinstance(p, int)]
            if not rest:
                return header + 1
            found = self._key_line(str(rest[0]), header)
            return found if found is not None else header + 1
        if parts and isinstance(parts[0], str):
            return self._key_line(parts[0], 0)
        return None


def _unquote_dotted(text: str) -> str:
    return ".".join(
        p.strip().strip("\"'") for p in re.split(r"\.(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", text)
    )


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


class _Checker:
    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.locate = _Locator(text)

    def fail(self, path: Sequence[str | int], problem: str) -> PipelineError:
        line = self.locate.line(path)
        where = f"{self.source}:{line}" if line else self.source
        key = _dotted(path)
        return PipelineError(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")

    def table(self, value: Any, path: Sequence[str | int]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a table, got {_kind(value)}")
        return value

    def keys(
        self, table: Mapping[str, Any], allowed: Sequence[str], path: Sequence[str | int]
    ) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.fail([*path, key], f"unknown key; {hint}keys: {', '.join(allowed)}")

    def string(self, value: Any, path: Sequence[str | int]) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"expected a non-empty string, got {_kind(value)}")
        return value

    def duration(self, value: Any, path: Sequence[str | int]) -> int:
        text = self.string(value, path)
        try:
            return parse_duration(text)
        except DurationError as err:
            raise self.fail(path, str(err)) from err

    def number(self, value: Any, path: Sequence[str | int]) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"expected a number, got {_kind(value)}")
        return float(value)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"


def load_pipeline(path: Path | str) -> PipelineConfig:
    """Read and validate a pipeline file; every problem is a one-line PipelineError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        msg = f"pipeline file {path} does not exist"
        raise PipelineError(msg) from err
    except (OSError, UnicodeDecodeError) as err:
        msg = f"cannot read pipeline file {path}: {err}"
        raise PipelineError(msg) from err
    return parse_pipeline(text, source=str(path))


def parse_pipeline(text: str, *, source: str = "<pipeline>") -> PipelineConfig:
    """Validate pipeline TOML ``text``; ``source`` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        msg = f"{source}: not valid TOML: {err}"
        raise PipelineError(msg) from err
    check = _Checker(source, text)
    check.keys(raw, _TOP_KEYS, [])
    meta = check.table(raw.get("pipeline", {}), ["pipeline"])
    name = meta.get("name", Path(source).stem if source.endswith(".toml") else "pipeline")
    name = check.string(name, ["pipeline", "name"])
    src = check.table(raw.get("source", {}), ["source"])
    check.keys(src, _SOURCE_KEYS, ["source"])
    sync = _sync(check, src, check.table(raw.get("sync", {}), ["sync"]))
    start = check.string(src["start"], ["source", "start"]) if "start" in src else None
    end = check.string(src["end"], ["source", "end"]) if "end" in src else None
    for key, value in (("start", start), ("end", end)):
        if value is not None:
            check.duration(value, ["source", key])
    stages = _stages(check, raw.get("stages", []))
    thresholds = check.table(raw.get("thresholds", {}), ["thresholds"])
    for key, value in thresholds.items():
        check.table(value, ["thresholds", key])
    contract = _contract(check, check.table(raw.get("contract", {}), ["contract"]))
    return PipelineConfig(
        source=source,
        name=name,
        sync=sync,
        start=start,
        end=end,
        stages=stages,
        thresholds=thresholds,
        contract=contract,
        raw=raw,
        text=text,
    )


def _sync(check: _Checker, src: Mapping[str, Any], sync: Mapping[str, Any]) -> SyncConfig | None:
    check.keys(sync, _SYNC_KEYS, ["sync"])
    topics = src.get("topics")
    if topics is None:
        if sync:
            raise check.fail(["sync"], "a sync policy needs [source] topics to sync")
        return None
    if not isinstance(topics, list) or not topics:
        raise check.fail(["source", "topics"], "expected a non-empty array of topic names")
    names = tuple(check.string(t, ["source", "topics"]) for t in topics)
    policy = check.string(sync.get("policy", "approximate"), ["sync", "policy"])
    if policy not in _POLICIES:
        raise check.fail(
            ["sync", "policy"], f"unknown policy {policy!r}; choose one of {', '.join(_POLICIES)}"
        )
    slop = check.duration(sync["slop"], ["sync", "slop"]) if "slop" in sync else None
    if slop is not None and slop < 0:
        raise check.fail(["sync", "slop"], "must not be negative")
    if policy == "exact" and slop is not None:
        raise check.fail(["sync", "slop"], "the exact policy takes no slop")
    queue = sync.get("queue_size", 100)
    if isinstance(queue, bool) or not isinstance(queue, int) or queue < 1:
        raise check.fail(
            ["sync", "queue_size"], f"expected a whole number >= 1, got {_kind(queue)}"
        )
    stamp = check.string(src.get("stamp", "header"), ["source", "stamp"])
    if stamp not in ("header", "log"):
        raise check.fail(["source", "stamp"], f"expected 'header' or 'log', got {stamp!r}")
    return SyncConfig(topics=names, policy=policy, slop_ns=slop, queue_size=queue, stamp=stamp)


def _stages(check: _Checker, stages: Any) -> tuple[StageConfig, ...]:
    if not isinstance(stages, list):
        raise check.fail(["stages"], "expected [[stages]] tables")
    out = []
    names: set[str] = set()
    for i, entry in enumerate(stages):
        table = check.table(entry, ["stages", i])
        if "use" not in table:
            raise check.fail(["stages", i], "missing key 'use' (a stage name or module:Class)")
        use = check.string(table["use"], ["stages", i, "use"])
        name = check.string(
            table.get("name", use.rpartition(":")[2] if ":" in use else use), ["stages", i, "name"]
        )
        if name in names:
            raise check.fail(["stages", i, "name"], f"a stage named {name!r} is already listed")
        names.add(name)
        params = {k: v for k, v in table.items() if k not in ("use", "name")}
        out.append(
            StageConfig(
                use=use,
                name=name,
                params=params,
                line=check.locate.line(["stages", i]),
                named="name" in table or ":" not in use,
            )
        )
    return tuple(out)


def _contract(check: _Checker, contract: Mapping[str, Any]) -> dict[str, ContractTopic]:
    out = {}
    for topic, entry in contract.items():
        path: list[str | int] = ["contract", topic]
        table = check.table(entry, path)
        check.keys(table, _CONTRACT_KEYS, path)
        lo = (
            check.number(table["min_rate_hz"], [*path, "min_rate_hz"])
            if "min_rate_hz" in table
            else None
        )
        hi = (
            check.number(table["max_rate_hz"], [*path, "max_rate_hz"])
            if "max_rate_hz" in table
            else None
        )
        if lo is not None and hi is not None and lo > hi:
            raise check.fail([*path, "min_rate_hz"], f"{lo:g} Hz is above max_rate_hz {hi:g} Hz")
        required = table.get("required", True)
        if not isinstance(required, bool):
            raise check.fail([*path, "required"], f"expected true or false, got {_kind(required)}")
        msgtype = check.string(table["type"], [*path, "type"]) if "type" in table else None
        out[topic] = ContractTopic(
            topic=topic, type=msgtype, min_rate_hz=lo, max_rate_hz=hi, required=required
        )
    return out


def _instantiate(factory: Any, params: Mapping[str, Any], *, name: str | None, fail: Any) -> Stage:
    """Build one stage; ``name`` None lets it keep its own (else the factory's name)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        accepted = signature.parameters
        open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        for key in params:
            if key not in accepted and not open_ended:
                choices = [p for p in accepted if p != "name"]
                close = difflib.get_close_matches(key, choices, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise fail(
                    key, f"unknown parameter; {hint}parameters: {', '.join(choices) or 'none'}"
                )
        kwargs = dict(params)
        if "name" in accepted and name is not None:
            kwargs["name"] = name
    else:
        kwargs = dict(params)
    try:
        stage = factory(**kwargs)
    except BagscopeError as err:
        raise fail(None, str(err)) from err
    except (TypeError, ValueError) as err:
        raise fail(None, f"bad parameters: {err}") from err
    own = getattr(stage, "name", None)
    wanted = name if name is not None else own if isinstance(own, str) else factory.__name__
    if own != wanted:
        with contextlib.suppress(AttributeError):  # a read-only name keeps its own
            stage.name = wanted
    return stage  # type: ignore[no-any-return]


def build_stages(
    config: PipelineConfig,
    *,
    builtins: Mapping[str, str],
    defaults: Sequence[str] = (),
) -> list[Stage]:
    """Build the stages a run needs: ``defaults`` (built-in names, e.g. ``analyze``'s health
    analyzers, with ``[thresholds.<name>]`` as their parameters) then the file's ``[[stages]]``.

    A listed stage with the name of a default replaces it. Parameters are checked against each
    stage's constructor here, before any reading.
    """
    check = _Checker(config.source, config.text)
    listed = {s.name for s in config.stages}
    stages: list[Stage] = []
    for name in defaults:
        if name in listed:
            continue
        factory = resolve_stage(name, builtins=builtins)
        params = config.params_for(name)

        def fail_default(key: str | None, problem: str, name: str = name) -> PipelineError:
            return check.fail(["thresholds", name, *([key] if key else [])], problem)

        stages.append(_instantiate(factory, params, name=name, fail=fail_default))
    for i, entry in enumerate(config.stages):

        def fail_listed(key: str | None, problem: str, i: int = i) -> PipelineError:
            return check.fail(["stages", i, *([key] if key else [])], problem)

        try:
            factory = resolve_stage(entry.use, builtins=builtins)
        except StageSpecError as err:
            raise fail_listed("use", str(err)) from err
        params = {**config.params_for(entry.name), **entry.params}
        stages.append(
            _instantiate(
                factory, params, name=entry.name if entry.named else None, fail=fail_listed
            )
        )
    return stages
