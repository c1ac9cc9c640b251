"""Pipeline files: what they mean, and errors that name the file, line and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bagscope.pipeline.config import (
    ContractTopic,
    PipelineError,
    SyncConfig,
    build_stages,
    load_pipeline,
    parse_pipeline,
)
from bagscope.pipeline.stage import StageResult

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pipelines"


class Tunable:
    """A stage with two thresholds, for parameter checking."""

    def __init__(self, *, gap_factor: float = 3.0, min_count: int = 2, name: str = "t") -> None:
        if gap_factor <= 1:
            from bagscope.errors import BagscopeError

            msg = f"gap_factor must be above 1, not {gap_factor}"
            raise BagscopeError(msg)
        self.name = name
        self.gap_factor = gap_factor
        self.min_count = min_count

    def finish(self) -> StageResult:
        return StageResult()


BUILTINS = {"tunable": f"{__name__}:Tunable"}


def errors_of(text: str, **kwargs: Any) -> str:
    def load() -> None:
        build_stages(parse_pipeline(text, source="p.toml"), builtins=BUILTINS, **kwargs)

    with pytest.raises(PipelineError) as info:
        load()
    return str(info.value)


def test_a_full_file_means_what_it_says() -> None:
    config = parse_pipeline(
        """
[pipeline]
name = "mine"
[source]
topics = ["/lidar/points", "camera/image"]
start = "2s"
end = "30s"
stamp = "log"
[sync]
policy = "nearest"
slop = "40ms"
queue_size = 10
[[stages]]
use = "tunable"
gap_factor = 4
[[stages]]
use = "tunable"
name = "second"
[thresholds.second]
min_count = 7
[contract."/imu"]
type = "sensor_msgs/msg/Imu"
min_rate_hz = 90
""",
        source="p.toml",
    )
    assert config.name == "mine"
    assert config.sync == SyncConfig(
        topics=("/lidar/points", "camera/image"),
        policy="nearest",
        slop_ns=40_000_000,
        queue_size=10,
        stamp="log",
    )
    assert (config.start, config.end) == ("2s", "30s")
    assert config.contract == {
        "/imu": ContractTopic(topic="/imu", type="sensor_msgs/msg/Imu", min_rate_hz=90.0)
    }
    stages = build_stages(config, builtins=BUILTINS)
    assert [s.name for s in stages] == ["tunable", "second"]
    assert isinstance(stages[0], Tunable)
    assert isinstance(stages[1], Tunable)
    assert (stages[0].gap_factor, stages[0].min_count) == (4, 2)
    assert (stages[1].gap_factor, stages[1].min_count) == (3.0, 7)


def test_defaults_take_their_thresholds_and_a_listed_stage_replaces_its_default() -> None:
    config = parse_pipeline("[thresholds.tunable]\ngap_factor = 5\n", source="p.toml")
    (stage,) = build_stages(config, builtins=BUILTINS, defaults=["tunable"])
    assert isinstance(stage, Tunable)
    assert stage.gap_factor == 5
    config = parse_pipeline('[[stages]]\nuse = "tunable"\nmin_count = 9\n', source="p.toml")
    (stage,) = build_stages(config, builtins=BUILTINS, defaults=["tunable"])
    assert isinstance(stage, Tunable)
    assert stage.min_count == 9


def test_the_digest_ignores_comments_and_layout() -> None:
    a = parse_pipeline('[sync]\npolicy = "exact"\n[source]\ntopics = ["/a"]\n')
    b = parse_pipeline('# hi\n[source]\ntopics = [ "/a" ]\n\n[sync]\npolicy="exact"\n')
    c = parse_pipeline('[source]\ntopics = ["/b"]\n')
    assert a.digest == b.digest != c.digest


def test_the_examples_are_valid() -> None:
    from bagscope.builtins import BUILTIN_STAGES

    files = sorted(EXAMPLES.glob("*.toml"))
    assert [f.name for f in files] == [
        "detection.toml", "health.toml", "lidar_models.toml", "lidar_quality.toml",
    ]  # fmt: skip
    for file in files:
        config = load_pipeline(file)
        assert config.sync is not None
        build_stages(config, builtins=BUILTIN_STAGES)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[sorce]\ntopics = []\n",
            "p.toml:1: sorce: unknown key; did you mean 'source'? keys: "
            "pipeline, source, sync, stages, thresholds, contract",
        ),
        (
            '[source]\ntopics = ["/a"]\n\n[sync]\npolicy = "closest"\n',
            "p.toml:5: sync.policy: unknown policy 'closest'; choose one of approximate, exact, "
            "nearest",
        ),
        (
            '[source]\ntopics = ["/a"]\n[sync]\nslop = "fast"\n',
            "p.toml:4: sync.slop: cannot read 'fast' as a duration: write e.g. 50ms, 1.5s, 2m",
        ),
        (
            '[source]\ntopics = ["/a"]\n[sync]\npolicy = "exact"\nslop = "5ms"\n',
            "p.toml:5: sync.slop: the exact policy takes no slop",
        ),
        (
            '[source]\ntopics = ["/a"]\n[sync]\nqueue_size = 0\n',
            "p.toml:4: sync.queue_size: expected a whole number >= 1, got int 0",
        ),
        (
            '[sync]\npolicy = "exact"\n',
            "p.toml:1: sync: a sync policy needs [source] topics to sync",
        ),
        (
            "[source]\ntopics = []\n",
            "p.toml:2: source.topics: expected a non-empty array of topic names",
        ),
        ("[source]\nstart = 5\n", "p.toml:2: source.start: expected a non-empty string, got int 5"),
        (
            '[[stages]]\nuse = "tunable"\n\n[[stages]]\nname = "x"\n',
            "p.toml:4: stages[1]: missing key 'use' (a stage name or module:Class)",
        ),
        (
            '[[stages]]\nuse = "tunable"\n[[stages]]\nuse = "tunable"\n',
            "p.toml:3: stages[1].name: a stage named 'tunable' is already listed",
        ),
        (
            '[contract."/imu"]\nmin_rate_hz = 10\nmax_rate_hz = 5\n',
            "p.toml:2: contract./imu.min_rate_hz: 10 Hz is above max_rate_hz 5 Hz",
        ),
        (
            '[contract."/imu"]\nrate = 10\n',
            "p.toml:2: contract./imu.rate: unknown key; "
            "keys: type, min_rate_hz, max_rate_hz, required",
        ),
        (
            "[source\n",
            "p.toml: not valid TOML: Expected ']' at the end of a table declaration "
            "(at line 1, column 8)",
        ),
    ],
)
def test_file_errors_name_the_line_and_key(text: str, message: str) -> None:
    assert errors_of(text) == message


def test_stage_errors_name_the_line_and_key() -> None:
    assert errors_of('\n[[stages]]\nuse = "tunabel"\n') == (
        "p.toml:3: stages[0].use: unknown stage 'tunabel'; did you mean 'tunable'? stages: tunable"
    )
    assert errors_of(
        '[[stages]]\nuse = "tunable"\n\n[[stages]]\nuse = "tunable"\nname = "b"\ngap_factr = 2\n'
    ) == (
        "p.toml:7: stages[1].gap_factr: unknown parameter; did you mean 'gap_factor'? "
        "parameters: gap_factor, min_count"
    )
    assert errors_of('[[stages]]\nuse = "tunable"\ngap_factor = 0.5\n') == (
        "p.toml:1: stages[0]: gap_factor must be above 1, not 0.5"
    )
    assert errors_of("[thresholds.tunable]\nmin_cont = 3\n", defaults=["tunable"]) == (
        "p.toml:2: thresholds.tunable.min_cont: unknown parameter; did you mean 'min_count'? "
        "parameters: gap_factor, min_count"
    )
    assert errors_of('[[stages]]\nuse = "os:nothing_here"\n') == (
        "p.toml:2: stages[0].use: stage 'os:nothing_here': module 'os' has no 'nothing_here'"
    )


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as info:
        load_pipeline(tmp_path / "nope.toml")
    assert str(info.value) == f"pipeline file {tmp_path / 'nope.toml'} does not exist"


def _readme_block(language: str, containing: str) -> str:
    text = (EXAMPLES.parents[1] / "README.md").read_text()
    blocks = text.split(f"```{language}\n")[1:]
    (block,) = [b.split("```", 1)[0] for b in blocks if containing in b]
    return block


def test_the_readme_pipeline_file_is_valid() -> None:
    from bagscope.builtins import BUILTIN_STAGES

    config = parse_pipeline(_readme_block("toml", "[contract"), source="README.md")
    stages = build_stages(config, builtins=BUILTIN_STAGES, defaults=["topic_health"])
    assert [s.name for s in stages] == ["topic_health", "pointcloud"]
    assert config.contract["/imu"].min_rate_hz == 90


def test_the_readme_stage_runs(camera_lidar_logs: dict[str, Path]) -> None:
    from bagscope.pipeline.runner import run_stages
    from bagscope.replay.log import open_log
    from bagscope.replay.sync import make_policy

    namespace: dict[str, Any] = {}
    exec(_readme_block("python", "class FewPoints"), namespace)  # our own README
    with open_log(camera_lidar_logs["mcap"]) as log:
        policy = make_policy("nearest", ["/lidar/points", "/camera/image/compressed"])
        result = run_stages(log, [namespace["FewPoints"]()], sync=policy)
    events = result.results["few_points"].events
    assert [e.message for e in events] == ["64 points"] * 10
