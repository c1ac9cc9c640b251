"""The recording contract: declared topics present, of their type, at their rate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from bagscope.analyzers.contract import RecordingContract, normalise_type
from bagscope.errors import BagscopeError
from tests.logwriter import T0

if TYPE_CHECKING:
    from pathlib import Path

    from bagscope.pipeline.stage import StageResult

from tests.analyzers.conftest import run

LIDAR, CAMERA = "/lidar/points", "/camera/image/compressed"


def contract(path: Path, spec: dict[str, Any], **kwargs: Any) -> StageResult:
    return run(path, RecordingContract(), contract=spec, **kwargs).results["contract"]


def table(result: StageResult) -> list[tuple[str | None, str, str, str, str]]:
    return [(c.topic, c.name, c.status, c.value, c.threshold) for c in result.checks]


@pytest.mark.parametrize("fmt", ["mcap", "db3", "bag"])
def test_a_log_that_keeps_its_contract(camera_lidar_logs: dict[str, Path], fmt: str) -> None:
    spec = {
        LIDAR: {"type": "sensor_msgs/msg/PointCloud2", "min_rate_hz": 9.5, "max_rate_hz": 10.5},
        # the ROS1 spelling of a type is the same type; no leading slash finds the topic
        "camera/image/compressed": {"type": "sensor_msgs/CompressedImage", "min_rate_hz": 25},
        "/tf": {},
        "/gps/fix": {"required": False},
    }
    result = contract(camera_lidar_logs[fmt], spec)

    assert result.events == []
    assert table(result) == [
        (LIDAR, "present", "pass", "10 messages", "required"),
        (LIDAR, "type", "pass", "sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/PointCloud2"),
        (LIDAR, "rate", "pass", "10.00 Hz", "9.5 .. 10.5 Hz"),  # 9 intervals over 0.9 s
        ("camera/image/compressed", "present", "pass", "30 messages", "required"),
        (
            "camera/image/compressed",
            "type",
            "pass",
            "sensor_msgs/msg/CompressedImage",
            "sensor_msgs/msg/CompressedImage",
        ),
        ("camera/image/compressed", "rate", "pass", "30.00 Hz", ">= 25 Hz"),
        ("/tf", "present", "pass", "50 messages", "required"),
        ("/gps/fix", "present", "skip", "absent", "optional"),
    ]
    assert result.metrics.value("messages", topic=LIDAR) == 10


def test_a_log_that_breaks_its_contract(camera_lidar_logs: dict[str, Path]) -> None:
    spec = {
        "/radar": {"type": "sensor_msgs/msg/PointCloud2"},
        LIDAR: {"type": "sensor_msgs/msg/LaserScan", "min_rate_hz": 12},
        CAMERA: {"max_rate_hz": 10},
        "/tf_static": {"min_rate_hz": 1},
    }
    result = contract(camera_lidar_logs["mcap"], spec)
    events = {(e.topic, e.kind): e for e in result.events}

    missing = events[("/radar", "contract_missing_topic")]
    assert missing.severity == "error"
    assert missing.message == "/radar: required by the contract but not in the log"
    wrong = events[(LIDAR, "contract_wrong_type")]
    assert wrong.severity == "error"
    assert wrong.evidence == {
        "type": "sensor_msgs/msg/PointCloud2",
        "expected": "sensor_msgs/msg/LaserScan",
    }
    slow = events[(LIDAR, "contract_rate")]
    assert (slow.severity, slow.evidence["rate_hz"]) == ("warning", 10.0)  # not below 6 Hz
    fast = events[(CAMERA, "contract_rate")]
    assert fast.severity == "error"  # 30 Hz is above 10 Hz / 0.5
    assert fast.message == "/camera/image/compressed: 30.00 Hz, above the contract's 10 Hz"
    once = events[("/tf_static", "contract_rate")]
    assert (once.severity, once.message) == ("error", "/tf_static: 1 message: no rate")
    assert len(result.events) == 5
    assert [c.status for c in result.checks if c.name == "present"] == [
        "fail",
        "pass",
        "pass",
        "pass",
    ]


def test_a_window_counts_only_what_it_holds(camera_lidar_logs: dict[str, Path]) -> None:
    # 0.3 s .. 0.65 s holds sweeps 3..6 (logged 2 ms after their stamps)
    result = contract(
        camera_lidar_logs["bag"],
        {LIDAR: {"min_rate_hz": 9}},
        start_ns=T0 + 300_000_000,
        end_ns=T0 + 650_000_000,
    )
    assert table(result) == [
        (LIDAR, "present", "pass", "4 messages", "required"),
        (LIDAR, "rate", "pass", "10.00 Hz", ">= 9 Hz"),
    ]


def test_custom_types_need_no_definitions(shared_data: Path) -> None:
    spec = {
        "/test_topic": {"type": "test_msgs/msg/BasicTypes", "min_rate_hz": 15},
        "/array_topic": {"type": "test_msgs/Arrays", "min_rate_hz": 15, "max_rate_hz": 30},
    }
    for name in ("cdr_test_mcap", "cdr_test_sqlite3"):
        result = contract(shared_data / "ros2" / name, spec)
        assert result.events == [], name
        # ros2 bag info: 3 messages from .763032325 to .863382628, 4 from .782683500 to .914169506
        rates = {c.topic: c.value for c in result.checks if c.name == "rate"}
        assert rates == {"/test_topic": "19.93 Hz", "/array_topic": "22.82 Hz"}


def test_every_real_log_with_an_empty_contract_has_no_checks(real_log_paths: list[Path]) -> None:
    for path in real_log_paths:
        result = contract(path, {})
        assert (result.events, result.checks) == ([], []), path.name


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"/a": {"rate": 10}}, "unknown key 'rate'"),
        ({"/a": {"min_rate_hz": 10, "max_rate_hz": 5}}, "min_rate_hz 10 is above max_rate_hz 5"),
        ({"/a": {"min_rate_hz": -1}}, "min_rate_hz must be a number > 0"),
        ({"/a": {"required": "yes"}}, "required must be true or false"),
        ({"/a": {"type": 3}}, "type must be a message type name"),
        ({"/a": 5}, "expected a table"),
    ],
)
def test_a_bad_contract_is_a_one_line_error(
    camera_lidar_logs: dict[str, Path], spec: dict[str, Any], match: str
) -> None:
    with pytest.raises(BagscopeError, match=match):
        contract(camera_lidar_logs["mcap"], spec)


def test_type_spellings() -> None:
    assert normalise_type("sensor_msgs/Image") == "sensor_msgs/msg/Image"
    assert normalise_type("sensor_msgs/msg/Image") == "sensor_msgs/msg/Image"
    with pytest.raises(BagscopeError, match="error_fraction"):
        RecordingContract(error_fraction=1.5)
