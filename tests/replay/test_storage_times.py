"""``times()``: every connection's log times from the indexes, exactly what reading gives.

The expected times are worked out from the timeline the logs were written with (and checked
against ``times_by_reading``, which streams every message); the index paths are made to fail
loudly if they fall back to reading payloads where the format indexes its messages.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import numpy as np
import pytest
from mcap.writer import CompressionType, IndexType
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.typesys import Stores, get_typestore
from ruamel.yaml import YAML

from bagscope.replay.storage import RecoveredLogWarning, open_storage
from bagscope.replay.storage import sqlite as sqlite_module
from bagscope.replay.storage.base import times_by_reading
from bagscope.replay.storage.mcapfile import McapFile
from bagscope.replay.storage.rosbag1 import Rosbag1File
from bagscope.replay.storage.sqlite import SqliteFile

from .conftest import (
    CAMERA,
    CUT_CASES,
    LIDAR,
    LOG_NAMES,
    MS,
    T0,
    TF,
    TYPES,
    Sample,
    data_file,
    payloads,
    timeline,
    truncate_copy,
    write_ros1_bag,
    write_ros1_mcap,
    write_ros2_bag,
)
from .test_storage_realdata import EXPECTED

if TYPE_CHECKING:
    from pathlib import Path

    from bagscope.replay.storage import Storage


def by_topic(storage: Storage, times: dict[int, np.ndarray]) -> dict[str, list[int]]:
    """Times per topic (connections of one topic merged), as plain sorted lists."""
    topic = {c.id: c.topic for c in storage.connections}
    out: dict[str, list[int]] = {}
    for cid, array in times.items():
        out.setdefault(topic[cid], []).extend(array.tolist())
    return {t: sorted(v) for t, v in out.items()}


def timeline_times(samples: list[Sample]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for s in samples:
        out.setdefault(s.topic, []).append(s.log_time_ns)
    return {t: sorted(v) for t, v in out.items()}


def assert_same_as_reading(storage: Storage) -> dict[int, np.ndarray]:
    """times() and times(ends_only) agree exactly with streaming every message."""
    want = times_by_reading(storage, None)  # type: ignore[arg-type]
    got = storage.times()
    assert set(got) == set(want)
    for cid, array in want.items():
        assert got[cid].dtype == np.int64
        assert got[cid].tolist() == array.tolist(), cid
    ends = storage.times(ends_only=True)
    assert set(ends) == set(want)
    for cid, array in want.items():
        assert (int(ends[cid][0]), int(ends[cid][-1])) == (int(array[0]), int(array[-1])), cid
        assert ends[cid].tolist() == sorted(ends[cid].tolist())
    return got


@pytest.fixture
def no_payload_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading chunks or rows for their messages fails: times must come from the indexes."""

    def refuse(*args: object, **kwargs: object) -> None:
        msg = "times() read messages instead of an index"
        raise AssertionError(msg)

    monkeypatch.setattr(McapFile, "_load", refuse)
    monkeypatch.setattr(Rosbag1File, "_load", refuse)
    monkeypatch.setattr(SqliteFile, "messages", refuse)
    monkeypatch.setattr("bagscope.replay.storage.chunks.decompress", refuse)


@pytest.mark.parametrize("name", LOG_NAMES)
def test_times_are_the_timeline(logs: dict[str, Path], samples: list[Sample], name: str) -> None:
    storage = open_storage([logs[name]])
    assert by_topic(storage, storage.times()) == timeline_times(samples)
    assert_same_as_reading(storage)


@pytest.mark.parametrize("name", LOG_NAMES)
@pytest.mark.usefixtures("no_payload_reads")
def test_times_come_from_the_indexes(
    logs: dict[str, Path], samples: list[Sample], name: str
) -> None:
    storage = open_storage([logs[name]])
    want = timeline_times(samples)
    assert by_topic(storage, storage.times()) == want
    ends = by_topic(storage, storage.times(ends_only=True))
    assert {t: (v[0], v[-1]) for t, v in ends.items()} == {
        t: (v[0], v[-1]) for t, v in want.items()
    }


@pytest.mark.parametrize("kind", ["bag", "bag-lz4", "mcap-lz4", "mcap-zstd"])
def test_ends_only_reads_the_first_and_last_chunks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    full = timeline()
    if kind.startswith("bag"):
        compression = "lz4" if kind.endswith("lz4") else "none"
        path = write_ros1_bag(
            tmp_path / "x.bag", full, compression=compression, chunk_threshold=64 * 1024
        )
    else:
        level = CompressionType.LZ4 if kind.endswith("lz4") else CompressionType.ZSTD
        path = write_ros1_mcap(tmp_path / "x.mcap", full, compression=level, chunk_size=64 * 1024)
    storage = open_storage([path])
    (file,) = storage._sources  # type: ignore[attr-defined]
    cls = type(file)
    read: list[int] = []
    original = cls._chunk_times

    def counting(self: object, chunk: object, ids: frozenset[int]) -> object:
        read.append(chunk.position)  # type: ignore[attr-defined]
        return original(self, chunk, ids)

    monkeypatch.setattr(cls, "_chunk_times", counting)
    storage.times(ends_only=True)
    # The chunks are in time order and do not overlap: the first and the last chunk holding
    # each topic, and nothing in between.
    chunks = sorted(file._chunks, key=lambda c: c.start_ns)
    assert len(chunks) >= 4
    needed = set()
    for topic in TYPES:
        ids = {c.id for c in storage.connections if c.topic == topic}
        local = {fid for fid, c in file._local.items() if c.id in ids}
        holding = [c for c in chunks if c.ids & local]
        needed |= {holding[0].position, holding[-1].position}
    assert sorted(read) == sorted(needed)
    assert len(read) < len(chunks)


def test_only_the_asked_connections(logs: dict[str, Path], samples: list[Sample]) -> None:
    for name in ("ros1_bz2", "ros2_mcap_zstd", "ros2_sqlite3"):
        storage = open_storage([logs[name]])
        camera = [c for c in storage.connections if c.topic == CAMERA]
        got = storage.times(camera)
        assert set(got) == {c.id for c in camera}
        assert by_topic(storage, got) == {CAMERA: timeline_times(samples)[CAMERA]}
        assert storage.times([]) == {}
        assert set(storage.times(camera, ends_only=True)) == {c.id for c in camera}


def test_progress_is_reported(logs: dict[str, Path]) -> None:
    for name in ("ros1", "ros2_mcap", "ros2_sqlite3"):
        calls: list[tuple[int, int]] = []
        storage = open_storage([logs[name]])
        storage.times(progress=lambda done, total, calls=calls: calls.append((done, total)))
        assert calls, name
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)
        assert all(total == 0 or done <= total for done, total in calls)


@pytest.mark.parametrize(("name", "suffix"), CUT_CASES)
def test_cut_off_logs_give_the_recovered_times(
    tmp_path: Path, logs: dict[str, Path], samples: list[Sample], name: str, suffix: str
) -> None:
    cut = truncate_copy(data_file(logs[name]), tmp_path / f"cut{suffix}", 0.6)
    with pytest.warns(RecoveredLogWarning):
        storage = open_storage([cut])
    got = assert_same_as_reading(storage)
    # What survived is a prefix of the timeline.
    n = sum(a.size for a in got.values())
    assert 0 < n < len(samples)
    assert by_topic(storage, got) == timeline_times(samples[:n])


def test_out_of_order_writes(tmp_path: Path) -> None:
    """Overlapping chunks: a topic's first time need not be in the chunk that starts first."""
    full = timeline()
    shuffled = full[1::2] + full[0::2]
    bag = write_ros1_bag(tmp_path / "shuffled.bag", shuffled, chunk_threshold=64 * 1024)
    mcap = write_ros1_mcap(tmp_path / "shuffled.mcap", shuffled, chunk_size=64 * 1024)
    for path in (bag, mcap):
        storage = open_storage([path])
        assert by_topic(storage, assert_same_as_reading(storage)) == timeline_times(full)


@pytest.mark.parametrize(
    "options",
    [
        {"index_types": IndexType.CHUNK, "compression": CompressionType.ZSTD},
        {"index_types": IndexType.CHUNK, "compression": CompressionType.NONE},
        {"use_chunking": False},
        {"use_statistics": False},
        {"index_types": IndexType.ALL},
    ],
    ids=["no-message-index-zstd", "no-message-index", "unchunked", "no-statistics", "all"],
)
def test_mcap_with_and_without_message_indexes(tmp_path: Path, options: dict[str, object]) -> None:
    """Writers may leave out message indexes: messages and times must not depend on them."""
    full = timeline()
    shuffled = full[1::2] + full[0::2]
    path = write_ros1_mcap(tmp_path / "x.mcap", shuffled, chunk_size=64 * 1024, **options)
    storage = open_storage([path])
    assert storage.info.message_count == len(full)
    got = [(m.log_time_ns, m.connection.topic) for m in storage.messages()]
    assert [t for t, _ in got] == [s.log_time_ns for s in full]
    assert sorted(got) == sorted((s.log_time_ns, s.topic) for s in full)  # ties in any order
    lidar = [c for c in storage.connections if c.topic == LIDAR]
    assert [m.log_time_ns for m in storage.messages(lidar)] == [
        s.log_time_ns for s in full if s.topic == LIDAR
    ]
    assert by_topic(storage, assert_same_as_reading(storage)) == timeline_times(full)


def _two_file_bag(tmp_path: Path, storage: str) -> Path:
    """A rosbag2 directory split into two files (topics spread over both), metadata for both."""
    full = timeline()
    early = [s for s in full if s.log_time_ns < T0 + 250 * MS]
    late = [s for s in full if s.log_time_ns >= T0 + 250 * MS and s.topic != TF]
    a = write_ros2_bag(tmp_path / "a", early, storage=storage)  # type: ignore[arg-type]
    b = write_ros2_bag(tmp_path / "b", late, storage=storage)  # type: ignore[arg-type]
    bag = tmp_path / "split"
    bag.mkdir()
    yaml = YAML(typ="safe")
    meta = yaml.load((a / "metadata.yaml").read_text())
    info = meta["rosbag2_bagfile_information"]
    names = []
    for i, part in enumerate((a, b)):
        (file,) = (p for p in part.iterdir() if p.suffix in (".mcap", ".db3"))
        names.append(f"split_{i}{file.suffix}")
        shutil.copy(file, bag / names[-1])
    info["relative_file_paths"] = names
    info["files"] = []
    info["message_count"] = len(early) + len(late)
    info["duration"] = {"nanoseconds": late[-1].log_time_ns - early[0].log_time_ns}
    for entry in info["topics_with_message_count"]:
        name = entry["topic_metadata"]["name"]
        entry["message_count"] = sum(s.topic == name for s in early + late)
    with (bag / "metadata.yaml").open("w") as out:
        yaml.dump(meta, out)
    return bag


@pytest.mark.parametrize("storage_name", ["mcap", "sqlite3"])
def test_bag_directory_of_two_files(tmp_path: Path, storage_name: str) -> None:
    bag = _two_file_bag(tmp_path, storage_name)
    full = timeline()
    want = [s for s in full if s.log_time_ns < T0 + 250 * MS or s.topic != TF]
    storage = open_storage([bag])
    assert storage.info.complete
    assert storage.info.message_count == len(want)
    assert len(storage.connections) == 3  # one per topic, whichever file holds it
    got = assert_same_as_reading(storage)
    assert by_topic(storage, got) == timeline_times(want)


def test_several_paths(tmp_path: Path, logs: dict[str, Path]) -> None:
    full = timeline()
    paths = [
        write_ros2_bag(tmp_path / "a", [s for s in full if s.topic == LIDAR], storage="sqlite3"),
        write_ros2_bag(tmp_path / "b", [s for s in full if s.topic == CAMERA], storage="mcap"),
        write_ros1_bag(tmp_path / "c.bag", [s for s in full if s.topic == TF]),
        logs["ros1_mcap_zstd"],
        next(logs["ros2_sqlite3"].glob("*.db3")),  # a bare .db3: counted on open
    ]
    storage = open_storage(paths)
    got = assert_same_as_reading(storage)
    want = {t: sorted(v * 3) for t, v in timeline_times(full).items()}
    assert by_topic(storage, got) == want


def test_message_compressed_bag_directory(tmp_path: Path, logs: dict[str, Path]) -> None:
    """Per-message zstd compresses payloads, not times: times still need no decompression."""
    plain = open_storage([logs["ros2_mcap"]])
    path = tmp_path / "compressed"
    writer = Writer2(path, version=9, storage_plugin=StoragePlugin.SQLITE3)
    writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    ts = get_typestore(Stores.ROS2_HUMBLE)
    with writer:
        conns = {t: writer.add_connection(t, TYPES[t], typestore=ts) for t in TYPES}
        for message in plain.messages():
            writer.write(conns[message.connection.topic], message.log_time_ns, message.data)
    storage = open_storage([path])
    assert by_topic(storage, assert_same_as_reading(storage)) == timeline_times(timeline())


def test_sqlite_ends_when_probing_costs_too_much(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A topic without messages (or no timestamp index) makes index probes scan the table:
    past a budget the one-pass read answers instead, with the same ends."""
    full = timeline()
    path = tmp_path / "bag"
    ts = get_typestore(Stores.ROS2_HUMBLE)
    data = payloads(ts, full, ros1=False)
    with Writer2(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conns = {t: writer.add_connection(t, TYPES[t], typestore=ts) for t in TYPES}
        writer.add_connection("/silent", "std_msgs/msg/String", typestore=ts)
        for sample, raw in zip(full, data, strict=True):
            writer.write(conns[sample.topic], sample.log_time_ns, raw)
    want = timeline_times(full)
    for steps in (sqlite_module._PROBE_STEPS, 1000):
        monkeypatch.setattr(sqlite_module, "_PROBE_STEPS", steps)
        storage = open_storage([path])
        ends = by_topic(storage, storage.times(ends_only=True))
        assert {t: (v[0], v[-1]) for t, v in ends.items()} == {
            t: (v[0], v[-1]) for t, v in want.items()
        }
        assert "/silent" in {c.topic for c in storage.connections}
        assert_same_as_reading(storage)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_logs(shared_data: Path, name: str) -> None:
    storage = open_storage([shared_data / name])
    got = assert_same_as_reading(storage)
    assert sum(a.size for a in got.values()) == storage.info.message_count
    counts = {c.id: c.count for c in storage.connections}
    assert {cid: a.size for cid, a in got.items()} == {c: n for c, n in counts.items() if n}


@pytest.mark.usefixtures("no_payload_reads")
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_logs_from_their_indexes(shared_data: Path, name: str) -> None:
    storage = open_storage([shared_data / name])
    got = storage.times()
    assert sum(a.size for a in got.values()) == storage.info.message_count
    ends = storage.times(ends_only=True)
    assert min(int(a[0]) for a in ends.values()) == storage.info.start_ns
    assert max(int(a[-1]) for a in ends.values()) == storage.info.end_ns
