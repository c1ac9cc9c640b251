"""Message definitions: embedded, fallback typestores, the user's .msg files, header stamps."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_typestore

from bagscope.replay.errors import ReplayError, UnknownTypeError
from bagscope.replay.log import open_log
from bagscope.replay.storage import header_stamp_ns

from .conftest import CAMERA, LIDAR, TF, Sample

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CDR_TEST = DATA / "ros2" / "cdr_test_sqlite3"

BASIC_TYPES = """\
bool bool_value
byte byte_value
char char_value
float32 float32_value
float64 float64_value
int8 int8_value
uint8 uint8_value
int16 int16_value
uint16 uint16_value
int32 int32_value
uint32 uint32_value
int64 int64_value
uint64 uint64_value
"""
CONSTANTS = """\
bool BOOL_CONST=true
byte BYTE_CONST=50
char CHAR_CONST=100
float32 FLOAT32_CONST=1.125
float64 FLOAT64_CONST=1.125
int8 INT8_CONST=-50
uint8 UINT8_CONST=200
int16 INT16_CONST=-1000
uint16 UINT16_CONST=2000
int32 INT32_CONST=-30000
uint32 UINT32_CONST=60000
int64 INT64_CONST=-40000000
uint64 UINT64_CONST=50000000
"""
DEFAULTS = """\
bool bool_value true
byte byte_value 50
char char_value 100
float32 float32_value 1.125
float64 float64_value 1.125
int8 int8_value -50
uint8 uint8_value 200
int16 int16_value -1000
uint16 uint16_value 2000
int32 int32_value -30000
uint32 uint32_value 60000
int64 int64_value -40000000
uint64 uint64_value 50000000
"""
ARRAYS = """\
bool[3] bool_values
byte[3] byte_values
char[3] char_values
float32[3] float32_values
float64[3] float64_values
int8[3] int8_values
uint8[3] uint8_values
int16[3] int16_values
uint16[3] uint16_values
int32[3] int32_values
uint32[3] uint32_values
int64[3] int64_values
uint64[3] uint64_values
string[3] string_values
BasicTypes[3] basic_types_values
Constants[3] constants_values
Defaults[3] defaults_values
bool[3] bool_values_default [false, true, false]
byte[3] byte_values_default [0, 1, 255]
char[3] char_values_default [0, 1, 127]
float32[3] float32_values_default [1.125, 0.0, -1.125]
float64[3] float64_values_default [3.1415, 0.0, -3.1415]
int8[3] int8_values_default [0, 127, -128]
uint8[3] uint8_values_default [0, 1, 255]
int16[3] int16_values_default [0, 32767, -32768]
uint16[3] uint16_values_default [0, 1, 65535]
int32[3] int32_values_default [0, 2147483647, -2147483648]
uint32[3] uint32_values_default [0, 1, 4294967295]
int64[3] int64_values_default [0, 9223372036854775807, -9223372036854775808]
uint64[3] uint64_values_default [0, 1, 18446744073709551615]
string[3] string_values_default ["", "max value", "min value"]
int32 alignment_check
"""


def _without_definitions(tmp_path: Path) -> Path:
    """The real cdr_test bag as a pre-Jazzy recorder wrote it: no message_definitions."""
    if not CDR_TEST.is_dir():
        pytest.skip("shared test data not present")
    bag = tmp_path / "cdr_test"
    shutil.copytree(CDR_TEST, bag)
    for file in bag.iterdir():
        file.chmod(0o644)
    with sqlite3.connect(bag / "cdr_test_0.db3") as db:
        db.execute("DELETE FROM message_definitions")
    return bag


def _write_test_msgs(root: Path) -> Path:
    pkg = root / "test_msgs" / "msg"
    pkg.mkdir(parents=True)
    for name, text in [
        ("BasicTypes", BASIC_TYPES),
        ("Constants", CONSTANTS),
        ("Defaults", DEFAULTS),
        ("Arrays", ARRAYS),
    ]:
        (pkg / f"{name}.msg").write_text(text)
    return root


def test_unknown_type_fails_only_on_deserialize(tmp_path: Path) -> None:
    log = open_log(_without_definitions(tmp_path))
    assert log.storage.info.message_count == 7  # metadata and raw messages need no definitions
    first = next(log.messages())
    conn = first.connection
    with pytest.raises(UnknownTypeError) as err:
        _ = first.payload
    text = str(err.value)
    assert f"'{conn.msgtype}' on {conn.topic}" in text
    assert "'humble' typestore" in text
    assert "--msg-path" in text
    assert not log.types.starts_with_header(conn.msgtype, conn.serialization)
    assert first.header_stamp_ns is None


def test_msg_path_supplies_missing_definitions(tmp_path: Path) -> None:
    bag = _without_definitions(tmp_path)
    msgs = _write_test_msgs(tmp_path / "defs")
    log = open_log(bag, msg_paths=[msgs])
    # the real bag with its embedded definitions decodes the same values
    reference = open_log(CDR_TEST)
    got = list(log.messages())
    want = list(reference.messages())
    assert len(got) == len(want) == 7
    for mine, theirs in zip(got, want, strict=True):
        a, b = mine.payload, theirs.payload
        assert repr(a).replace("usertypes", "") == repr(b).replace("usertypes", "")
    arrays = next(m for m in got if m.topic == "/array_topic")
    decoded = log.types.deserialize(arrays.data, "test_msgs/msg/Arrays", "cdr")
    assert list(decoded.string_values_default) == ["", "max value", "min value"]  # type: ignore[attr-defined]
    assert decoded.bool_values.tolist() == [True, False, True]  # type: ignore[attr-defined]


def test_typestore_names(tmp_path: Path, logs: dict[str, Path]) -> None:
    with pytest.raises(ReplayError, match=r"unknown typestore 'rolling'.*noetic.*humble"):
        open_log(logs["ros2_mcap"], typestore="rolling")
    for name in ("jazzy", "ros2_iron", "ROS2_FOXY", "noetic"):
        assert open_log(logs["ros2_mcap"], typestore=name).storage.info.message_count == 26
    with pytest.raises(ReplayError, match="not a directory"):
        open_log(logs["ros2_mcap"], msg_paths=[tmp_path / "nowhere"])


def test_fallback_typestore_for_a_log_without_definitions(tmp_path: Path) -> None:
    """A log whose types carry no definitions decodes with the chosen store."""
    ts = get_typestore(Stores.ROS2_HUMBLE)
    path = tmp_path / "nodefs"
    with Writer2(path, version=8) as writer:
        conn = writer.add_connection("/s", "std_msgs/msg/String", typestore=ts)
        raw = ts.serialize_cdr(ts.types["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String")
        writer.write(conn, 42, raw)
    with sqlite3.connect(next(path.glob("*.db3"))) as db:
        db.execute("DELETE FROM message_definitions")
    log = open_log(path, typestore="jazzy")
    msg = next(log.messages())
    assert msg.payload.data == "hi"  # type: ignore[attr-defined]
    assert log.storage.info.start_ns == log.storage.info.end_ns == 42


@pytest.mark.parametrize("name", ["ros1_lz4", "ros2_mcap", "ros2_sqlite3", "ros1_mcap"])
def test_header_stamps_without_decoding(
    logs: dict[str, Path], samples: list[Sample], name: str
) -> None:
    log = open_log(logs[name])
    serialization = log.connections()[0].serialization
    assert log.types.starts_with_header("sensor_msgs/msg/PointCloud2", serialization)
    assert log.types.starts_with_header("sensor_msgs/msg/CompressedImage", serialization)
    assert not log.types.starts_with_header("tf2_msgs/msg/TFMessage", serialization)
    assert not log.types.starts_with_header("no_such/msg/Type", serialization)
    stamps = {
        m.log_time_ns: header_stamp_ns(m.data, m.connection.serialization)
        for m in log.storage.messages()
        if m.connection.topic in (LIDAR, CAMERA)
    }
    assert stamps == {
        m.log_time_ns: m.header_stamp_ns for m in log.messages(topics=[LIDAR, CAMERA])
    }
    assert stamps == {s.log_time_ns: s.stamp_ns for s in samples if s.topic != TF}


def test_header_stamp_big_endian_cdr() -> None:
    ts = get_typestore(Stores.ROS2_HUMBLE)
    header = ts.types["std_msgs/msg/Header"](
        stamp=ts.types["builtin_interfaces/msg/Time"](sec=1_700_000_123, nanosec=456),
        frame_id="x",
    )
    big = ts.serialize_cdr(header, "std_msgs/msg/Header", little_endian=False)
    assert header_stamp_ns(big, "cdr") == 1_700_000_123_000_000_456
    little = ts.serialize_cdr(header, "std_msgs/msg/Header")
    assert header_stamp_ns(little, "cdr") == 1_700_000_123_000_000_456
