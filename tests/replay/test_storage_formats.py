"""Format detection, metadata and message streaming over logs written by rosbags' writers."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import Reader as Reader2
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.typesys import Stores, get_typestore

from bagscope.replay.errors import LogOpenError
from bagscope.replay.storage import open_storage
from bagscope.replay.types import MessageTypes

from .conftest import (
    CAMERA,
    LIDAR,
    LOG_NAMES,
    MS,
    T0,
    TF,
    TYPES,
    Sample,
    timeline,
    write_ros1_bag,
    write_ros1_mcap,
    write_ros2_bag,
)

if TYPE_CHECKING:
    from pathlib import Path

ALL = list(LOG_NAMES)
STORAGE = {
    "ros1": ("rosbag1", "none"),
    "ros1_bz2": ("rosbag1", "bz2"),
    "ros1_lz4": ("rosbag1", "lz4"),
    "ros2_mcap": ("mcap", "none"),
    "ros2_mcap_zstd": ("mcap", "zstd"),
    "ros2_sqlite3": ("sqlite3", "none"),
    "ros1_mcap": ("mcap-ros1", "lz4"),
    "ros1_mcap_zstd": ("mcap-ros1", "zstd"),
}


@pytest.mark.parametrize("name", ALL)
def test_info_without_scanning(logs: dict[str, Path], samples: list[Sample], name: str) -> None:
    storage = open_storage([logs[name]])
    info = storage.info
    assert (info.storage, info.compression) == STORAGE[name]
    assert info.start_ns == samples[0].log_time_ns
    assert info.end_ns == samples[-1].log_time_ns  # inclusive, not rosbags' last + 1
    assert info.message_count == len(samples)
    assert info.complete
    assert info.recovery_note is None
    assert info.size_bytes > 0
    counts = {c.topic: c.count for c in storage.connections}
    assert counts == {t: sum(s.topic == t for s in samples) for t in TYPES}
    assert {c.topic: c.msgtype for c in storage.connections} == TYPES
    ros1 = name.startswith("ros1")
    assert {c.serialization for c in storage.connections} == {"ros1" if ros1 else "cdr"}
    storage.close()


@pytest.mark.parametrize("name", ALL)
def test_messages_in_log_time_order(
    logs: dict[str, Path], samples: list[Sample], name: str
) -> None:
    storage = open_storage([logs[name]])
    got = [(m.connection.topic, m.log_time_ns) for m in storage.messages()]
    assert got == [(s.topic, s.log_time_ns) for s in samples]


@pytest.mark.parametrize("name", ["ros1_bz2", "ros2_mcap_zstd", "ros2_sqlite3", "ros1_mcap"])
def test_payloads_decode_to_what_was_written(
    logs: dict[str, Path], samples: list[Sample], name: str
) -> None:
    storage = open_storage([logs[name]])
    lidar = [m for m in storage.messages() if m.connection.topic == LIDAR]
    cloud = MessageTypes(storage.definitions).deserialize(
        lidar[2].data, TYPES[LIDAR], lidar[2].connection.serialization
    )
    stamp = cloud.header.stamp  # type: ignore[attr-defined]
    want = next(s for s in samples if s.topic == LIDAR and s.log_time_ns == T0 + 200 * MS)
    assert stamp.sec * 1_000_000_000 + stamp.nanosec == want.stamp_ns
    points = np.frombuffer(cloud.data, dtype=np.float32).reshape(-1, 4)  # type: ignore[attr-defined]
    expect = np.random.default_rng(2).normal(size=(points.shape[0], 4)).astype(np.float32)
    np.testing.assert_array_equal(points, expect)


def test_same_payload_bytes_as_rosbags(logs: dict[str, Path]) -> None:
    for name in ("ros1_lz4", "ros2_mcap_zstd", "ros2_sqlite3"):
        storage = open_storage([logs[name]])
        mine = [(m.log_time_ns, m.connection.topic, bytes(m.data)) for m in storage.messages()]
        with AnyReader([logs[name]]) as reader:
            theirs = [(t, c.topic, bytes(d)) for c, t, d in reader.messages()]
        assert mine == theirs, name


@pytest.mark.parametrize("name", ["ros1_bz2", "ros2_mcap", "ros2_sqlite3", "ros1_mcap_zstd"])
def test_filter_by_connection_and_time(
    logs: dict[str, Path], samples: list[Sample], name: str
) -> None:
    storage = open_storage([logs[name]])
    camera = [c for c in storage.connections if c.topic == CAMERA]
    start, end = T0 + 100 * MS, T0 + 300 * MS
    got = [m.log_time_ns for m in storage.messages(camera, start_ns=start, end_ns=end)]
    want = [s.log_time_ns for s in samples if s.topic == CAMERA and start <= s.log_time_ns < end]
    assert got == want
    assert len(want) == 6
    # start is inclusive and end exclusive, exactly at message times
    lidar = [c for c in storage.connections if c.topic == LIDAR]
    got = [m.log_time_ns for m in storage.messages(lidar, start_ns=start, end_ns=end)]
    assert got == [T0 + 100 * MS, T0 + 200 * MS]
    assert list(storage.messages([], start_ns=start)) == []
    assert list(storage.messages(start_ns=T0 + 10_000 * MS)) == []


def test_several_paths_merge_into_one_stream(tmp_path: Path) -> None:
    """Three formats, each holding one topic, read back as one time-ordered log."""
    full = timeline()
    parts = {
        "a": [s for s in full if s.topic == LIDAR],
        "b": [s for s in full if s.topic == CAMERA],
        "c": [s for s in full if s.topic == TF],
    }
    paths = [
        write_ros2_bag(tmp_path / "a", parts["a"], storage="sqlite3"),
        write_ros2_bag(tmp_path / "b", parts["b"], storage="mcap"),
        write_ros1_mcap(tmp_path / "c.mcap", parts["c"]),
    ]
    storage = open_storage(paths)
    info = storage.info
    assert info.storage == "mcap+mcap-ros1+sqlite3"
    assert info.message_count == len(full)
    assert (info.start_ns, info.end_ns) == (full[0].log_time_ns, full[-1].log_time_ns)
    assert len({c.id for c in storage.connections}) == len(storage.connections) == 9
    got = [(m.connection.topic, m.log_time_ns) for m in storage.messages()]
    assert got == [(s.topic, s.log_time_ns) for s in full]
    tf = [c for c in storage.connections if c.topic == TF and c.count]
    assert [m.log_time_ns for m in storage.messages(tf)] == [s.log_time_ns for s in parts["c"]]


def test_directory_of_split_files_is_merged(tmp_path: Path, logs: dict[str, Path]) -> None:
    full = timeline()
    split = tmp_path / "split"
    split.mkdir()
    early = write_ros2_bag(tmp_path / "x", [s for s in full if s.log_time_ns < T0 + 250 * MS])
    late = write_ros2_bag(tmp_path / "y", [s for s in full if s.log_time_ns >= T0 + 250 * MS])
    shutil.copy(next(early.glob("*.mcap")), split / "part_0.mcap")
    shutil.copy(next(late.glob("*.mcap")), split / "part_1.mcap")
    (split / "notes.txt").write_text("not a log")
    storage = open_storage([split])
    assert storage.info.message_count == len(full)
    assert [m.log_time_ns for m in storage.messages()] == [s.log_time_ns for s in full]


def test_detection_uses_magic_not_extension(tmp_path: Path, logs: dict[str, Path]) -> None:
    odd = tmp_path / "recording.dat"
    shutil.copy(logs["ros1_lz4"], odd)
    assert open_storage([odd]).info.storage == "rosbag1"
    mcap_named_bag = tmp_path / "really_mcap.bag"
    shutil.copy(logs["ros1_mcap"], mcap_named_bag)
    assert open_storage([mcap_named_bag]).info.storage == "mcap-ros1"
    db3 = next(logs["ros2_sqlite3"].glob("*.db3"))
    bare = open_storage([db3])  # a .db3 on its own: counts come from the tables
    assert bare.info.storage == "sqlite3"
    assert bare.info.message_count == len(timeline())
    assert bare.info.complete
    yaml = open_storage([logs["ros2_mcap"] / "metadata.yaml"])
    assert yaml.info.message_count == len(timeline())


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("empty.bag", b"", "empty file"),
        ("noise.bag", bytes(range(256)) * 4, "not a recognised log"),
        ("noise.mcap", b"\x00\x01garbage" * 50, "not a recognised log"),
        ("noise.db3", b"SQLite format 2\x00" + b"x" * 500, "not a recognised log"),
        ("fake.db3", b"SQLite format 3\x00" + b"\x00" * 84, "not a readable"),
    ],
)
def test_bad_files_are_one_line_errors(
    tmp_path: Path, name: str, content: bytes, match: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LogOpenError, match=match) as err:
        open_storage([path])
    assert "\n" not in str(err.value)
    assert str(path) in str(err.value)


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(LogOpenError, match="no such file"):
        open_storage([tmp_path / "nope.bag"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("hello")
    with pytest.raises(LogOpenError, match="holds no log"):
        open_storage([tmp_path / "empty"])
    with pytest.raises(LogOpenError, match="no log given"):
        open_storage([])


def test_bag_directory_with_missing_file(tmp_path: Path, logs: dict[str, Path]) -> None:
    bag = tmp_path / "bag"
    shutil.copytree(logs["ros2_mcap"], bag)
    next(bag.glob("*.mcap")).unlink()
    with pytest.raises(LogOpenError, match="missing"):
        open_storage([bag])


def test_bag_without_messages(tmp_path: Path) -> None:
    path = tmp_path / "empty.bag"
    ts = get_typestore(Stores.ROS1_NOETIC)
    with Writer1(path) as writer:
        writer.add_connection("/idle", "std_msgs/msg/String", typestore=ts)
    storage = open_storage([path])
    info = storage.info
    assert (info.message_count, info.start_ns, info.end_ns) == (0, 0, 0)
    assert [(c.topic, c.count) for c in storage.connections] in ([], [("/idle", 0)])
    assert list(storage.messages()) == []
    empty2 = write_ros2_bag(tmp_path / "empty2", [], storage="mcap")
    storage2 = open_storage([empty2])
    assert storage2.info.message_count == 0
    assert list(storage2.messages()) == []


@pytest.mark.parametrize("storage_plugin", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
def test_per_message_zstd_compression(
    tmp_path: Path, logs: dict[str, Path], storage_plugin: StoragePlugin
) -> None:
    """rosbag2's ``compression_mode: message`` stores each payload zstd-compressed."""
    plain = open_storage([logs["ros2_mcap"]])
    path = tmp_path / "compressed"
    writer = Writer2(path, version=9, storage_plugin=storage_plugin)
    writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    ts = get_typestore(Stores.ROS2_HUMBLE)
    with writer:
        conns = {t: writer.add_connection(t, TYPES[t], typestore=ts) for t in TYPES}
        for message in plain.messages():
            writer.write(conns[message.connection.topic], message.log_time_ns, message.data)
    storage = open_storage([path])
    assert storage.info.compression == "zstd"
    got = [(m.log_time_ns, bytes(m.data)) for m in storage.messages()]
    assert got == [(m.log_time_ns, bytes(m.data)) for m in plain.messages()]


def test_out_of_order_writes_come_out_sorted(tmp_path: Path) -> None:
    """Recorders write in arrival order; overlapping chunks must still merge by log time."""
    full = timeline()
    shuffled = full[1::2] + full[0::2]  # two interleaved passes: every chunk overlaps others
    bag = write_ros1_bag(tmp_path / "shuffled.bag", shuffled, chunk_threshold=64 * 1024)
    mcap = write_ros1_mcap(tmp_path / "shuffled.mcap", shuffled, chunk_size=64 * 1024)
    for path in (bag, mcap):
        storage = open_storage([path])
        assert [m.log_time_ns for m in storage.messages()] == [s.log_time_ns for s in full]
        start = full[5].log_time_ns
        got = [m.log_time_ns for m in storage.messages(start_ns=start)]
        assert got == [s.log_time_ns for s in full[5:]]


def _small_sqlite_bag(path: Path, *, foreign: bool = False) -> list[tuple[str, int, bytes]]:
    """Many small messages (more than one fetch's worth); ``foreign`` adds a topic serialized
    in a format the reader does not serve, interleaved with the others."""
    ts = get_typestore(Stores.ROS2_HUMBLE)
    types = ts.types
    written = []
    with Writer2(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conn = writer.add_connection("/count", "std_msgs/msg/UInt32", typestore=ts)
        other = None
        if foreign:  # rosbags' own reader refuses such a bag
            other = writer.add_connection(
                "/foreign", "std_msgs/msg/UInt32", typestore=ts, serialization_format="json"
            )
        for i in range(1000):
            t = T0 + i * MS
            if other is not None and i % 7 == 3:
                writer.write(other, t, b'{"data": %d}' % i)
                continue
            data = bytes(
                ts.serialize_cdr(types["std_msgs/msg/UInt32"](data=i), "std_msgs/msg/UInt32")
            )
            writer.write(conn, t, data)
            written.append(("/count", t, data))
    return written


def test_small_sqlite_messages_are_rosbags_raw_iteration(tmp_path: Path) -> None:
    """The batched sqlite path yields exactly what rosbags' own reader yields, in order."""
    path = tmp_path / "small"
    written = _small_sqlite_bag(path)
    storage = open_storage([path])
    mine = [(m.connection.topic, m.log_time_ns, bytes(m.data)) for m in storage.messages()]
    with Reader2(path) as reader:
        theirs = [(c.topic, t, bytes(d)) for c, t, d in reader.messages()]
    assert mine == theirs == written
    (conn,) = storage.connections
    assert all(m.connection is conn for m in storage.messages())  # the directory's record
    got = [m.log_time_ns for m in storage.messages(start_ns=T0 + 10 * MS, end_ns=T0 + 500 * MS)]
    assert got == [t for _, t, _ in written if T0 + 10 * MS <= t < T0 + 500 * MS]


def test_sqlite_rows_of_topics_not_served_are_skipped(tmp_path: Path) -> None:
    """A topic in another serialization is not served; its rows between others' are skipped."""
    path = tmp_path / "mixed"
    written = _small_sqlite_bag(path, foreign=True)
    for target in (path, next(path.glob("*.db3"))):
        storage = open_storage([target])
        assert [c.topic for c in storage.connections] == ["/count"]
        got = [(m.connection.topic, m.log_time_ns, bytes(m.data)) for m in storage.messages()]
        assert got == written
        assert storage.times()[storage.connections[0].id].tolist() == [t for _, t, _ in written]
