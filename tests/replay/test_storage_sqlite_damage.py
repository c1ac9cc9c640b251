"""Damaged ROS2 sqlite3 logs: report what can be read, never what metadata.yaml remembers.

Bags are written with rosbags' own writer; damage is done to whole pages of the messages
table, found by walking its b-tree in the file (the sqlite file format, section 1.6), so the
rows each page holds — and so what must survive — are known before the reader sees the file.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_typestore

from bagscope.replay.errors import LogOpenError, TruncatedLogError
from bagscope.replay.storage import RecoveredLogWarning, open_storage
from bagscope.replay.storage.base import times_by_reading

if TYPE_CHECKING:
    from pathlib import Path

    from bagscope.replay.storage import Storage

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
IMU, FIX = "/imu", "/fix"
STORE = get_typestore(Stores.ROS2_HUMBLE)


def _payload(topic: str, index: int) -> bytes:
    types = STORE.types
    sec, nsec = divmod(T0 + index * MS, 1_000_000_000)
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=topic
    )
    if topic == IMU:
        vec = types["geometry_msgs/msg/Vector3"](x=float(index), y=0.0, z=9.81)
        quat = types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)
        cov = np.zeros(9)
        msg = types["sensor_msgs/msg/Imu"](
            header=header,
            orientation=quat,
            orientation_covariance=cov,
            angular_velocity=vec,
            angular_velocity_covariance=cov,
            linear_acceleration=vec,
            linear_acceleration_covariance=cov,
        )
        return bytes(STORE.serialize_cdr(msg, "sensor_msgs/msg/Imu"))
    msg = types["sensor_msgs/msg/NavSatFix"](
        header=header,
        status=types["sensor_msgs/msg/NavSatStatus"](status=0, service=1),
        latitude=48.0 + index,
        longitude=11.0,
        altitude=500.0,
        position_covariance=np.zeros(9),
        position_covariance_type=0,
    )
    return bytes(STORE.serialize_cdr(msg, "sensor_msgs/msg/NavSatFix"))


# (row id, topic, log time, payload) in writing order: rosbags inserts rows with ids 1, 2, ...
Row = tuple[int, str, int, bytes]


def write_bag(path: Path, count: int = 400) -> list[Row]:
    """IMU every 1 ms, a fix every 10th message; small messages, many rows per page."""
    rows: list[Row] = []
    with Writer2(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conns = {
            IMU: writer.add_connection(IMU, "sensor_msgs/msg/Imu", typestore=STORE),
            FIX: writer.add_connection(FIX, "sensor_msgs/msg/NavSatFix", typestore=STORE),
        }
        for i in range(count):
            topic = FIX if i % 10 == 9 else IMU
            data = _payload(topic, i)
            writer.write(conns[topic], T0 + i * MS, data)
            rows.append((i + 1, topic, T0 + i * MS, data))
    return rows


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        byte = raw[pos + i]
        if i == 8:
            return (value << 8) | byte, pos + 9
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos + i + 1
    raise AssertionError


def table_leaves(
    db3: Path, table: str = "messages"
) -> tuple[int, int, list[tuple[int, list[int]]]]:
    """(page size, root page, [(leaf page, row ids on it)]) of a table's b-tree."""
    raw = db3.read_bytes()
    page = int.from_bytes(raw[16:18], "big")
    with sqlite3.connect(f"{db3.as_uri()}?mode=ro", uri=True) as db:
        (root,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()
    leaves = []
    todo = [root]
    while todo:
        number = todo.pop()
        base = (number - 1) * page
        head = base + (100 if number == 1 else 0)
        kind, cells = raw[head], int.from_bytes(raw[head + 3 : head + 5], "big")
        if kind == 0x05:  # interior table page: child pointers, then the right-most one
            for i in range(cells):
                cell = int.from_bytes(raw[head + 12 + 2 * i : head + 14 + 2 * i], "big")
                todo.append(int.from_bytes(raw[base + cell : base + cell + 4], "big"))
            todo.append(int.from_bytes(raw[head + 8 : head + 12], "big"))
            continue
        assert kind == 0x0D, kind  # leaf table page: cells of (payload size, row id, payload)
        ids = []
        for i in range(cells):
            cell = base + int.from_bytes(raw[head + 8 + 2 * i : head + 10 + 2 * i], "big")
            _, cell = _varint(raw, cell)
            ids.append(_varint(raw, cell)[0])
        leaves.append((number, ids))
    return page, root, sorted(leaves)


def damage(db3: Path, pages: list[int], *, how: str = "zero", seed: int = 0) -> None:
    raw = bytearray(db3.read_bytes())
    page = int.from_bytes(raw[16:18], "big")
    rng = random.Random(seed)
    for number in pages:
        start = (number - 1) * page
        fill = bytes(page) if how == "zero" else rng.randbytes(page)
        raw[start : start + page] = fill
    db3.write_bytes(bytes(raw))


def db3_of(bag: Path) -> Path:
    return next(bag.glob("*.db3"))


def read_all(storage: Storage) -> list[tuple[str, int, bytes]]:
    return [(m.connection.topic, m.log_time_ns, bytes(m.data)) for m in storage.messages()]


def assert_consistent(storage: Storage, survivors: list[Row]) -> None:
    """info, counts, messages and times all describe exactly ``survivors``."""
    info = storage.info
    want = sorted((topic, t, data) for _, topic, t, data in survivors)
    got = read_all(storage)
    assert [t for _, t, _ in got] == sorted(t for _, t, _ in got)
    assert sorted(got) == want
    assert info.message_count == len(survivors)
    assert sum(c.count for c in storage.connections) == len(survivors)
    per_topic = {c.topic: c.count for c in storage.connections}
    for topic in (IMU, FIX):
        assert per_topic[topic] == sum(r[1] == topic for r in survivors)
    times = [t for _, _, t, _ in survivors]
    assert (info.start_ns, info.end_ns) == ((min(times), max(times)) if times else (0, 0))
    reading = times_by_reading(storage, None)  # type: ignore[arg-type]
    got_times = storage.times()
    assert {c: a.tolist() for c, a in got_times.items()} == {
        c: a.tolist() for c, a in reading.items()
    }
    ends = storage.times(ends_only=True)
    assert {c: (int(a[0]), int(a[-1])) for c, a in ends.items()} == {
        c: (int(a[0]), int(a[-1])) for c, a in reading.items()
    }


@pytest.mark.parametrize("how", ["zero", "garbage"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_damaged_data_page_in_a_bag_directory(tmp_path: Path, how: str, where: str) -> None:
    bag = tmp_path / "bag"
    rows = write_bag(bag)
    _, _, leaves = table_leaves(db3_of(bag))
    assert len(leaves) > 5  # several pages of rows
    number, lost = {"first": leaves[0], "middle": leaves[len(leaves) // 2], "last": leaves[-1]}[
        where
    ]
    damage(db3_of(bag), [number], how=how)
    survivors = [r for r in rows if r[0] not in lost]
    with pytest.warns(RecoveredLogWarning) as caught:
        storage = open_storage([bag])
    info = storage.info
    assert not info.complete
    assert info.recovery_note is not None
    assert str(caught[0].message) == info.recovery_note
    duration = (rows[-1][2] - rows[0][2]) / 1e9
    assert (
        f"metadata.yaml lists {len(rows)} messages over {duration:.3f} s; "
        f"{len(survivors)} could be read"
    ) in info.recovery_note
    assert "\n" not in info.recovery_note
    assert_consistent(storage, survivors)
    with pytest.raises(TruncatedLogError, match="strict"):
        open_storage([bag], strict=True)


def test_every_data_page_damaged(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    rows = write_bag(bag)
    _, root, leaves = table_leaves(db3_of(bag))
    damage(db3_of(bag), [root, *(n for n, _ in leaves)])
    with pytest.warns(RecoveredLogWarning, match="recovered 0 messages"):
        storage = open_storage([bag])
    duration = (rows[-1][2] - rows[0][2]) / 1e9
    assert storage.info.recovery_note is not None
    assert storage.info.recovery_note.endswith(
        f"metadata.yaml lists {len(rows)} messages over {duration:.3f} s; 0 could be read"
    )
    assert storage.info.message_count == 0
    assert (storage.info.start_ns, storage.info.end_ns) == (0, 0)
    assert_consistent(storage, [])
    assert storage.times() == {}


def test_a_real_bag_with_its_messages_pages_zeroed(tmp_path: Path, shared_data: Path) -> None:
    """rosbag2's own cdr_test bag (7 messages over 0.151 s) with its messages page zeroed."""
    bag = tmp_path / "cdr_test"
    shutil.copytree(shared_data / "ros2/cdr_test_sqlite3", bag)
    _, root, leaves = table_leaves(db3_of(bag))
    damage(db3_of(bag), [root, *(n for n, _ in leaves)])
    with pytest.warns(RecoveredLogWarning):
        storage = open_storage([bag])
    info = storage.info
    assert info.recovery_note is not None
    assert "metadata.yaml lists 7 messages over 0.151 s; 0 could be read" in info.recovery_note
    assert (info.message_count, info.complete) == (0, False)
    assert read_all(storage) == []


def test_a_cut_off_db3_in_a_bag_directory(tmp_path: Path) -> None:
    """metadata.yaml survived, the database was cut: the counts are what the cut file holds."""
    bag = tmp_path / "bag"
    rows = write_bag(bag, count=1200)
    db3 = db3_of(bag)
    page, _, leaves = table_leaves(db3)
    raw = db3.read_bytes()
    cut = len(raw) * 6 // 10
    db3.write_bytes(raw[:cut])
    with pytest.warns(RecoveredLogWarning, match="could be read"):
        storage = open_storage([bag])
    info = storage.info
    assert not info.complete
    got = read_all(storage)
    assert 0 < len(got) < len(rows)
    # Every leaf page wholly before the cut is still read (interior pages may be lost, so
    # rows beyond may or may not be found through the ids that follow).
    kept = {i for number, ids in leaves if number * page <= cut for i in ids}
    survivors = [r for r in rows if r[0] in kept]
    assert {(t, d) for _, t, d in got} >= {(t, d) for _, _, t, d in survivors}
    found = {(topic, t, data) for topic, t, data in got}
    assert_consistent(storage, [r for r in rows if (r[1], r[2], r[3]) in found])
    assert f"{len(got)} could be read" in (info.recovery_note or "")


@pytest.mark.parametrize("how", ["zero", "garbage"])
def test_a_damaged_bare_db3(tmp_path: Path, how: str) -> None:
    rows = write_bag(tmp_path / "bag")
    db3 = db3_of(tmp_path / "bag")
    _, _, leaves = table_leaves(db3)
    number, lost = leaves[2]
    damage(db3, [number], how=how)
    with pytest.warns(RecoveredLogWarning, match="damaged"):
        storage = open_storage([db3])
    assert_consistent(storage, [r for r in rows if r[0] not in lost])


def test_intact_bags_still_trust_their_metadata(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    rows = write_bag(bag)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        storage = open_storage([bag], strict=True)
    assert storage.info.complete
    assert storage.info.recovery_note is None
    assert_consistent(storage, rows)


def test_metadata_listing_more_than_the_file_holds(tmp_path: Path) -> None:
    """An intact database with fewer rows than metadata.yaml says: the rows win, with a note."""
    bag = tmp_path / "bag"
    rows = write_bag(bag)
    with sqlite3.connect(db3_of(bag)) as db:
        db.execute("DELETE FROM messages WHERE id > 300")
    survivors = rows[:300]
    with pytest.warns(RecoveredLogWarning, match="lists 400 messages .*; 300 could be read"):
        storage = open_storage([bag])
    assert not storage.info.complete
    assert_consistent(storage, survivors)


@pytest.mark.parametrize("seed", range(32))
def test_random_page_damage_is_never_a_traceback(tmp_path: Path, seed: int) -> None:
    """Seeded damage anywhere in the file (header, schema, index or data pages, or a cut)."""
    rng = random.Random(seed)
    bag = tmp_path / "bag"
    rows = write_bag(bag, count=600)
    db3 = db3_of(bag)
    pages = db3.stat().st_size // 4096
    kind = rng.choice(["zero", "garbage", "cut", "flip"])
    if kind == "cut":
        raw = db3.read_bytes()
        db3.write_bytes(raw[: rng.randrange(100, len(raw))])
    elif kind == "flip":
        raw = bytearray(db3.read_bytes())
        for _ in range(rng.randrange(1, 20)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        db3.write_bytes(bytes(raw))
    else:
        damage(db3, rng.sample(range(1, pages + 1), rng.randrange(1, 4)), how=kind, seed=seed)
    for target in (bag, db3):
        outcome = _read_damaged(target)
        if isinstance(outcome, str):  # one clear error
            assert "\n" not in outcome
            continue
        storage, got = outcome
        assert len(got) <= len(rows) or kind == "flip"
        if kind in ("zero", "cut"):
            # Damage sqlite can see: what info says is what was read.
            assert storage.info.message_count == len(got)


def _read_damaged(target: Path) -> str | tuple[Storage, list[tuple[str, int, bytes]]]:
    """Open and read everything; a LogOpenError's message instead where there is one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RecoveredLogWarning)
            storage = open_storage([target])
        got = read_all(storage)
        storage.times()
        storage.times(ends_only=True)
    except LogOpenError as err:
        return str(err)
    return storage, got
