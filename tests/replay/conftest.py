"""Small logs with hand-picked stamps, written by rosbags' (and mcap's) own writers.

The same timeline is written in every format, so a test can compare formats message for
message. Log (receive) times and header stamps differ by ``LATENCY_NS`` so tests can tell them
apart. Clouds are big enough (~320 KB) that every format writes several chunks, which the
truncation tests need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.typesys import Stores, get_typestore

from tests.logwriter import header, jpeg, ros1_store, tf_message

if TYPE_CHECKING:
    from pathlib import Path

    from rosbags.typesys.store import Typestore

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
LATENCY_NS = 2 * MS
CLOUD_POINTS = 20_000
LIDAR, CAMERA, TF = "/lidar/points", "/camera/image/compressed", "/tf"
TYPES = {
    LIDAR: "sensor_msgs/msg/PointCloud2",
    CAMERA: "sensor_msgs/msg/CompressedImage",
    TF: "tf2_msgs/msg/TFMessage",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One message to write: where, when, and which header stamp it carries."""

    topic: str
    log_time_ns: int
    stamp_ns: int

    @property
    def msgtype(self) -> str:
        return TYPES[self.topic]


def timeline() -> list[Sample]:
    """Lidar at 10 Hz, camera at ~30 Hz, tf at 10 Hz over 0.5 s; no two log times are equal."""
    times = [(LIDAR, T0 + k * 100 * MS) for k in range(6)]
    times += [(CAMERA, T0 + 8 * MS + k * 33 * MS) for k in range(15)]
    times += [(TF, T0 + 5 * MS + k * 100 * MS) for k in range(5)]
    times.sort(key=lambda x: x[1])
    return [Sample(topic=t, log_time_ns=ns, stamp_ns=ns - LATENCY_NS) for t, ns in times]


def build_message(ts: Typestore, sample: Sample, *, index: int = 0) -> object:
    """A message of ``sample``'s type for the store's ROS version (ROS1 headers carry seq)."""
    types = ts.types
    stamp = sample.stamp_ns
    if sample.topic == TF:
        return tf_message(ts, stamp, "odom", "base_link", (float(index), 0.0, 0.0), seq=index)
    if sample.topic == CAMERA:
        rgb = np.full((16, 16, 3), index * 10 % 256, dtype=np.uint8)
        return jpeg(ts, stamp, rgb, seq=index)
    head = header(ts, stamp, "lidar", seq=index)
    field = types["sensor_msgs/msg/PointField"]
    fields = [
        field(name=n, offset=4 * i, datatype=7, count=1)
        for i, n in enumerate(("x", "y", "z", "intensity"))
    ]
    rng = np.random.default_rng(index)
    points = rng.normal(size=(CLOUD_POINTS, 4)).astype(np.float32)
    return types["sensor_msgs/msg/PointCloud2"](
        header=head,
        height=1,
        width=CLOUD_POINTS,
        fields=fields,
        is_bigendian=False,
        point_step=16,
        row_step=16 * CLOUD_POINTS,
        data=points.view(np.uint8).reshape(-1),
        is_dense=True,
    )


def payloads(ts: Typestore, samples: list[Sample], *, ros1: bool) -> list[bytes]:
    """Serialized payloads of ``samples`` in order (index = position per topic)."""
    seen: dict[str, int] = {}
    out = []
    for sample in samples:
        index = seen[sample.topic] = seen.get(sample.topic, -1) + 1
        msg = build_message(ts, sample, index=index)
        raw = (
            ts.serialize_ros1(msg, sample.msgtype)
            if ros1
            else ts.serialize_cdr(msg, sample.msgtype)
        )
        out.append(bytes(raw))
    return out


def write_ros1_bag(
    path: Path,
    samples: list[Sample],
    *,
    compression: Literal["none", "bz2", "lz4"] = "none",
    chunk_threshold: int = 256 * 1024,
) -> Path:
    """A ROS1 bag of ``samples`` with several chunks."""
    ts = ros1_store()
    data = payloads(ts, samples, ros1=True)
    writer = Writer1(path)
    if compression != "none":
        writer.set_compression(Writer1.CompressionFormat[compression.upper()])
    writer.chunk_threshold = chunk_threshold
    with writer:
        conns = {t: writer.add_connection(t, TYPES[t], typestore=ts) for t in TYPES}
        for sample, raw in zip(samples, data, strict=True):
            writer.write(conns[sample.topic], sample.log_time_ns, raw)
    return path


def write_ros2_bag(
    path: Path,
    samples: list[Sample],
    *,
    storage: Literal["mcap", "sqlite3"] = "mcap",
    zstd: bool = False,
) -> Path:
    """A rosbag2 directory (metadata.yaml + one file) of ``samples``."""
    ts = get_typestore(Stores.ROS2_HUMBLE)
    data = payloads(ts, samples, ros1=False)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer2(path, version=9, storage_plugin=plugin)
    if zstd:
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with writer:
        conns = {t: writer.add_connection(t, TYPES[t], typestore=ts) for t in TYPES}
        for sample, raw in zip(samples, data, strict=True):
            writer.write(conns[sample.topic], sample.log_time_ns, raw)
    return path


def write_ros1_mcap(
    path: Path,
    samples: list[Sample],
    *,
    compression: CompressionType = CompressionType.LZ4,
    chunk_size: int = 256 * 1024,
    **options: Any,
) -> Path:
    """An MCAP file in the ``ros1`` profile (ros1msg schemas), which rosbags cannot read.

    ``options`` go to the mcap library's writer (``index_types``, ``use_chunking``, ...).
    """
    ts = ros1_store()
    data = payloads(ts, samples, ros1=True)
    with path.open("wb") as stream:
        writer = McapWriter(stream, chunk_size=chunk_size, compression=compression, **options)
        writer.start(profile="ros1", library="bagscope-tests")
        channels = {}
        for topic, msgtype in TYPES.items():
            text, _ = ts.generate_msgdef(msgtype)
            name = msgtype.replace("/msg/", "/")
            sid = writer.register_schema(name=name, encoding="ros1msg", data=text.encode())
            channels[topic] = writer.register_channel(
                topic=topic, message_encoding="ros1", schema_id=sid
            )
        for seq, (sample, raw) in enumerate(zip(samples, data, strict=True)):
            writer.add_message(
                channel_id=channels[sample.topic],
                log_time=sample.log_time_ns,
                publish_time=sample.log_time_ns,
                data=raw,
                sequence=seq,
            )
        writer.finish()
    return path


# The keys of the `logs` fixture, and those whose data file the recovery tests cut short.
LOG_NAMES = (
    "ros1",
    "ros1_bz2",
    "ros1_lz4",
    "ros2_mcap",
    "ros2_mcap_zstd",
    "ros2_sqlite3",
    "ros1_mcap",
    "ros1_mcap_zstd",
)
CUT_CASES = [
    ("ros1", ".bag"),
    ("ros1_bz2", ".bag"),
    ("ros1_lz4", ".bag"),
    ("ros2_mcap", ".mcap"),
    ("ros2_mcap_zstd", ".mcap"),
    ("ros1_mcap", ".mcap"),
    ("ros2_sqlite3", ".db3"),
]


def data_file(path: Path) -> Path:
    """The file a recorder writes to (a bag directory's .mcap/.db3 has no metadata.yaml yet)."""
    if path.is_file():
        return path
    return next(p for p in path.iterdir() if p.suffix in (".mcap", ".db3"))


def truncate_copy(src: Path, dst: Path, fraction: float = 0.6) -> Path:
    """The first ``fraction`` of ``src``'s bytes, as a recorder that lost power leaves them."""
    raw = src.read_bytes()
    dst.write_bytes(raw[: int(len(raw) * fraction)])
    return dst


@pytest.fixture(scope="session")
def samples() -> list[Sample]:
    return timeline()


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One log per format, all holding :func:`timeline`."""
    root = tmp_path_factory.mktemp("logs")
    tl = timeline()
    return {
        "ros1": write_ros1_bag(root / "plain.bag", tl),
        "ros1_bz2": write_ros1_bag(root / "bz2.bag", tl, compression="bz2"),
        "ros1_lz4": write_ros1_bag(root / "lz4.bag", tl, compression="lz4"),
        "ros2_mcap": write_ros2_bag(root / "mcap_bag", tl, storage="mcap"),
        "ros2_mcap_zstd": write_ros2_bag(root / "mcap_zstd_bag", tl, storage="mcap", zstd=True),
        "ros2_sqlite3": write_ros2_bag(root / "sqlite_bag", tl, storage="sqlite3"),
        "ros1_mcap": write_ros1_mcap(root / "ros1.mcap", tl),
        "ros1_mcap_zstd": write_ros1_mcap(
            root / "ros1_zstd.mcap", tl, compression=CompressionType.ZSTD
        ),
    }
