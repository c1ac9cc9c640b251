"""TransformBuffer against hand-computed transforms, real TF messages and a real recorded bag."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from bagscope.replay.errors import TransformError
from bagscope.replay.tf import (
    TfView,
    TransformBuffer,
    matrix_to_quat,
    quat_to_matrix,
    slerp,
)

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

S = 1_000_000_000
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def zrot(deg: float) -> list[float]:
    """Quaternion (x, y, z, w) for a rotation of ``deg`` about z."""
    half = math.radians(deg) / 2.0
    return [0.0, 0.0, math.sin(half), math.cos(half)]


def expected(deg_z: float, xyz: tuple[float, float, float]) -> np.ndarray:
    """Hand-built 4×4: rotation about z then translation."""
    c, s = math.cos(math.radians(deg_z)), math.sin(math.radians(deg_z))
    m = np.eye(4)
    m[:2, :2] = [[c, -s], [s, c]]
    m[:3, 3] = xyz
    return m


# ------------------------------------------------------------------ quaternion helpers


def test_quat_helpers_round_trip_and_vectorise() -> None:
    rng = np.random.default_rng(7)
    q = rng.normal(size=(200, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 3] < 0] *= -1
    # include the awkward 180° cases where the trace is -1
    q[:3] = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    r = quat_to_matrix(q)
    assert r.shape == (200, 3, 3)
    np.testing.assert_allclose(
        r @ np.swapaxes(r, 1, 2), np.broadcast_to(np.eye(3), r.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    np.testing.assert_allclose(matrix_to_quat(r), q, atol=1e-12)
    np.testing.assert_allclose(
        quat_to_matrix(zrot(90)), expected(90, (0, 0, 0))[:3, :3], atol=1e-12
    )


def test_slerp_midpoint_short_way_and_nearly_equal() -> None:
    np.testing.assert_allclose(slerp(zrot(0), zrot(90), 0.5), zrot(45), atol=1e-12)
    np.testing.assert_allclose(
        slerp(zrot(0), zrot(90), [0.0, 1.0]), [zrot(0), zrot(90)], atol=1e-12
    )
    # -q is the same rotation: interpolation must not swing the long way round
    neg90 = [-c for c in zrot(90)]
    mid = slerp(zrot(0), neg90, 0.5)
    np.testing.assert_allclose(quat_to_matrix(mid), quat_to_matrix(zrot(45)), atol=1e-12)
    tiny = slerp(zrot(0), zrot(1e-9), 0.5)
    np.testing.assert_allclose(np.linalg.norm(tiny), 1.0)


# ------------------------------------------------------------------ interpolation


def moving_buffer() -> TransformBuffer:
    """odom -> base rotating 0→90° about z and moving (0,0,0)→(2,4,6) over one second."""
    buf = TransformBuffer()
    buf.add("odom", "base", 0, [0, 0, 0], zrot(0))
    buf.add("odom", "base", S, [2, 4, 6], zrot(90))
    return buf


def test_interpolates_rotation_by_slerp_and_translation_linearly() -> None:
    buf = moving_buffer()
    np.testing.assert_allclose(
        buf.lookup("odom", "base", S // 2), expected(45, (1, 2, 3)), atol=1e-12
    )
    np.testing.assert_allclose(
        buf.lookup("odom", "base", S // 4), expected(22.5, (0.5, 1, 1.5)), atol=1e-12
    )
    np.testing.assert_allclose(buf.lookup("odom", "base", 0), expected(0, (0, 0, 0)), atol=1e-12)
    np.testing.assert_allclose(buf.lookup("odom", "base", S), expected(90, (2, 4, 6)), atol=1e-12)


def test_inverse_direction_and_identity() -> None:
    buf = moving_buffer()
    forward = buf.lookup("odom", "base", S // 2)
    np.testing.assert_allclose(
        buf.lookup("base", "odom", S // 2), np.linalg.inv(forward), atol=1e-12
    )
    np.testing.assert_array_equal(buf.lookup("base", "base", 123), np.eye(4))
    # a point 1 m ahead of the robot at 90° lies at +y of the robot's position in odom
    view = buf.at(S)
    assert isinstance(view, TfView)
    pts = view.transform_points([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], target="odom", source="base")
    np.testing.assert_allclose(pts, [[2, 5, 6], [2, 4, 6]], atol=1e-12)
    np.testing.assert_allclose(view.lookup("odom", "base"), expected(90, (2, 4, 6)), atol=1e-12)


# ------------------------------------------------------------------ tree walking


def tree_buffer() -> TransformBuffer:
    """map -> odom -> base -> {lidar, camera -> camera_optical}; odom -> base is dynamic."""
    buf = TransformBuffer()
    buf.add("map", "odom", 0, [10, 0, 0], zrot(90), static=True)
    buf.add("odom", "base", 0, [0, 0, 0], zrot(0))
    buf.add("odom", "base", 2 * S, [4, 0, 0], zrot(0))
    buf.add("base", "lidar", 0, [0, 0, 2], zrot(0), static=True)
    buf.add("base", "camera", 0, [1, 0, 1], zrot(-90), static=True)
    buf.add("camera", "camera_optical", 0, [0, 0, 0], zrot(180), static=True)
    return buf


def test_chains_up_through_three_frames() -> None:
    buf = tree_buffer()
    # lidar origin at t=1 s: base is at (2,0,0) in odom, lidar 2 m above; odom is turned 90° in map
    got = buf.lookup("map", "lidar", S)
    np.testing.assert_allclose(got, expected(90, (10, 2, 2)), atol=1e-12)
    m = (
        buf.lookup("map", "odom", 0)
        @ buf.lookup("odom", "base", S)
        @ buf.lookup("base", "lidar", 0)
    )
    np.testing.assert_allclose(got, m, atol=1e-12)


def test_chains_up_and_down_through_common_ancestor() -> None:
    buf = tree_buffer()
    got = buf.lookup("camera_optical", "lidar", S)
    # camera_optical <- camera <- base -> lidar; the common ancestor is base
    manual = np.linalg.inv(
        buf.lookup("base", "camera", 0) @ buf.lookup("camera", "camera_optical", 0)
    ) @ buf.lookup("base", "lidar", 0)
    np.testing.assert_allclose(got, manual, atol=1e-12)
    # by hand: lidar origin (0,0,2) in base; camera at (1,0,1) turned -90°: (-1,0,1) from camera
    # becomes (0,-1,1) in camera axes; the optical frame turns 180° more: (0,1,1)
    np.testing.assert_allclose(got[:3, 3], [0, 1, 1], atol=1e-12)
    np.testing.assert_allclose(got[:3, :3], expected(-90, (0, 0, 0))[:3, :3], atol=1e-12)
    np.testing.assert_allclose(
        buf.lookup("lidar", "camera_optical", S), np.linalg.inv(got), atol=1e-12
    )


def test_static_edges_hold_at_all_times_dynamic_ones_do_not() -> None:
    buf = tree_buffer()
    far = 1000 * S
    np.testing.assert_allclose(
        buf.lookup("base", "camera_optical", far), buf.lookup("base", "camera_optical", 0)
    )
    assert buf.can_transform("base", "camera_optical", -far)
    assert not buf.can_transform("map", "base", far)
    assert buf.time_range("odom", "base") == (0, 2 * S)
    assert buf.time_range("/odom", "/base") == (0, 2 * S)
    assert buf.time_range("base", "lidar") is None  # static: no range
    assert buf.time_range("map", "base") is None  # no such edge
    assert buf.parent_of("camera_optical") == "camera"
    assert buf.parent_of("map") is None
    assert buf.frames() == {"map", "odom", "base", "lidar", "camera", "camera_optical"}
    assert len(buf) == 6  # 4 static + 2 dynamic samples
    edges = {(e.parent, e.child): e for e in buf.edges()}
    assert edges["odom", "base"].count == 2
    assert not edges["odom", "base"].static
    assert edges["base", "lidar"].static


def test_leading_slash_is_dropped_everywhere() -> None:
    buf = TransformBuffer()
    buf.add("/world", "/robot", 0, [1, 2, 3], zrot(0), static=True)
    buf.add("robot", "/sensor", 0, [0, 0, 1], zrot(0), static=True)
    assert buf.frames() == {"world", "robot", "sensor"}
    assert buf.parent_of("/sensor") == "robot"
    np.testing.assert_allclose(buf.lookup("world", "/sensor", 0)[:3, 3], [1, 2, 4])
    np.testing.assert_allclose(buf.lookup("/world", "sensor", 0)[:3, 3], [1, 2, 4])
    np.testing.assert_array_equal(buf.lookup("/sensor", "sensor", 0), np.eye(4))


# ------------------------------------------------------------------ errors


def test_unknown_frame_is_named_with_known_frames() -> None:
    buf = tree_buffer()
    with pytest.raises(TransformError, match=r"unknown frame 'radar'; known frames: base, camera"):
        buf.lookup("map", "radar", 0)
    with pytest.raises(TransformError, match="no transforms have been added"):
        TransformBuffer().lookup("map", "base", 0)
    assert not buf.can_transform("radar", "map", 0)


def test_disconnected_trees() -> None:
    buf = tree_buffer()
    buf.add("world", "gps", 0, [0, 0, 0], zrot(0), static=True)
    with pytest.raises(TransformError, match=r"'gps' and 'lidar' are in different trees"):
        buf.lookup("gps", "lidar", 0)


def test_extrapolation_within_tolerance_clamps_beyond_raises() -> None:
    buf = TransformBuffer(tolerance_ns=50_000_000)
    buf.add("odom", "base", S, [1, 0, 0], zrot(0))
    buf.add("odom", "base", 2 * S, [2, 0, 0], zrot(0))
    np.testing.assert_allclose(buf.lookup("odom", "base", S - 50_000_000)[:3, 3], [1, 0, 0])
    np.testing.assert_allclose(buf.lookup("odom", "base", 2 * S + 40_000_000)[:3, 3], [2, 0, 0])
    with pytest.raises(TransformError) as info:
        buf.lookup("odom", "base", 2 * S + 300_000_000)
    text = str(info.value)
    assert "'odom' -> 'base'" in text
    assert f"t={2 * S + 300_000_000} ns" in text
    assert "0.300 s after its last sample" in text
    assert f"available {S}..{2 * S} ns" in text
    with pytest.raises(TransformError, match=r"0\.051 s before its first sample"):
        buf.lookup("base", "odom", S - 51_000_000)
    strict = TransformBuffer(tolerance_ns=0)
    strict.add("a", "b", S, [0, 0, 0], zrot(0))
    assert strict.can_transform("a", "b", S)
    assert not strict.can_transform("a", "b", S + 1)


def test_rejects_bad_input() -> None:
    buf = TransformBuffer()
    with pytest.raises(TransformError, match="to itself"):
        buf.add("a", "/a", 0, [0, 0, 0], zrot(0))
    with pytest.raises(TransformError, match="invalid transform"):
        buf.add("a", "b", 0, [0, 0, 0], [0, 0, 0, 0])
    with pytest.raises(TransformError, match="3 translation and 4 rotation"):
        buf.add("a", "b", 0, [0, 0], zrot(0))
    with pytest.raises(TransformError, match=">= 0"):
        TransformBuffer(tolerance_ns=-1)
    with pytest.raises(TransformError, match="expected a TFMessage"):
        buf.add_message(object(), static=False)
    assert len(buf) == 0


# ------------------------------------------------------------------ storage


def test_out_of_order_adds_and_duplicate_stamps() -> None:
    buf = TransformBuffer()
    for t in (3, 0, 2, 1):
        buf.add("odom", "base", t * S, [t, 0, 0], zrot(10 * t))
    buf.add("odom", "base", 2 * S, [20, 0, 0], zrot(20))  # duplicate stamp: last wins
    assert len(buf) == 4
    assert buf.time_range("odom", "base") == (0, 3 * S)
    np.testing.assert_allclose(buf.lookup("odom", "base", 2 * S)[:3, 3], [20, 0, 0])
    np.testing.assert_allclose(
        buf.lookup("odom", "base", S // 2), expected(5, (0.5, 0, 0)), atol=1e-12
    )
    # appending in order after a lookup extends the arrays; an older sample re-sorts them
    buf.add("odom", "base", 4 * S, [4, 0, 0], zrot(40))
    buf.add("odom", "base", S + S // 2, [7, 0, 0], zrot(15))
    assert len(buf) == 6
    np.testing.assert_allclose(buf.lookup("odom", "base", S + S // 4)[:3, 3], [4, 0, 0])
    np.testing.assert_allclose(
        buf.lookup("odom", "base", 3 * S + S // 2), expected(35, (3.5, 0, 0)), atol=1e-12
    )


def test_many_in_order_adds_interleaved_with_lookups() -> None:
    buf = TransformBuffer()
    for i in range(500):  # crosses the preallocated capacity several times
        buf.add("odom", "base", i * 10_000_000, [i, 0, 0], zrot(0))
        np.testing.assert_allclose(buf.lookup("odom", "base", i * 10_000_000)[0, 3], i)
    assert len(buf) == 500
    np.testing.assert_allclose(buf.lookup("odom", "base", 2_495_000_000)[0, 3], 249.5)


def test_reparenting_latest_parent_wins_and_loops_are_refused() -> None:
    buf = TransformBuffer()
    buf.add("a", "c", 0, [1, 0, 0], zrot(0), static=True)
    buf.add("b", "c", 0, [2, 0, 0], zrot(0), static=True)
    assert buf.parent_of("c") == "b"
    np.testing.assert_allclose(buf.lookup("b", "c", 0)[:3, 3], [2, 0, 0])
    buf.add("c", "b", 0, [0, 0, 0], zrot(0), static=True)  # b <- c and c <- b: a loop
    assert buf.frames() == {"b", "c"}  # 'a' no longer takes part in the tree
    with pytest.raises(TransformError, match="loop"):
        buf.lookup("b", "c", 0)


def test_lookup_many_equals_per_time_lookup() -> None:
    buf = tree_buffer()
    buf.add("odom", "base", S, [1, 1, 0], zrot(30))
    times = np.array([0, 1, S // 3, S, S + 7, 2 * S - 1, 2 * S, 2 * S + 10_000_000], dtype=np.int64)
    many = buf.lookup_many("camera_optical", "map", times)
    assert many.shape == (times.size, 4, 4)
    for t, m in zip(times, many, strict=True):
        np.testing.assert_allclose(m, buf.lookup("camera_optical", "map", int(t)), atol=1e-12)
    assert buf.lookup_many("map", "lidar", np.array([], dtype=np.int64)).shape == (0, 4, 4)
    with pytest.raises(TransformError, match="after its last sample"):
        buf.lookup_many("map", "lidar", np.array([0, 5 * S]))


# ------------------------------------------------------------------ real messages


TFMESSAGE_MSG = "geometry_msgs/TransformStamped[] transforms\n"


def typestore_with_tf(store: Stores) -> Typestore:
    """A typestore that also knows TFMessage and legacy tfMessage (ROS1 stores lack them)."""
    ts = get_typestore(store)
    for name in ("tf2_msgs/msg/TFMessage", "tf/msg/tfMessage"):
        if name not in ts.types:
            ts.register(get_types_from_msg(TFMESSAGE_MSG, name))
    return ts


def transform_stamped(
    ts: Typestore,
    stamp: tuple[int, int],
    frames: tuple[str, str],
    *,
    xyz: list[float],
    q: list[float],
) -> Any:  # rosbags message classes are generated at runtime
    """A geometry_msgs/TransformStamped built with the typestore's own classes."""
    types = ts.types
    header_kw: dict[str, Any] = {"frame_id": frames[0]}
    if any(name == "seq" for name, _ in ts.fielddefs["std_msgs/msg/Header"][1]):
        header_kw["seq"] = 0  # ROS1's Header still has it
    return types["geometry_msgs/msg/TransformStamped"](
        header=types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=stamp[0], nanosec=stamp[1]),
            **header_kw,
        ),
        child_frame_id=frames[1],
        transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=xyz[0], y=xyz[1], z=xyz[2]),
            rotation=types["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
        ),
    )


@pytest.mark.parametrize(
    ("store", "tf_type"),
    [
        (Stores.ROS2_HUMBLE, "tf2_msgs/msg/TFMessage"),
        (Stores.ROS1_NOETIC, "tf2_msgs/msg/TFMessage"),
        (Stores.ROS1_NOETIC, "tf/msg/tfMessage"),
    ],
)
def test_add_message_with_typestore_messages(store: Stores, tf_type: str) -> None:
    ts = typestore_with_tf(store)
    tfmsg = ts.types[tf_type]
    buf = TransformBuffer()
    laser = transform_stamped(ts, (0, 0), ("base_link", "laser"), xyz=[0, 0, 1], q=zrot(0))
    buf.add_message(tfmsg(transforms=[laser]), static=True)
    for sec in (100, 101):
        odom = transform_stamped(
            ts,
            (sec, 500_000_000),
            ("/odom", "base_link"),
            xyz=[sec - 100, 0, 0],
            q=zrot(90 * (sec - 100)),
        )
        msg = tfmsg(transforms=[odom])
        # round trip through the wire format, as a reader hands it over
        if store == Stores.ROS1_NOETIC:
            decoded = ts.deserialize_ros1(ts.serialize_ros1(msg, tf_type), tf_type)
        else:
            decoded = ts.deserialize_cdr(ts.serialize_cdr(msg, tf_type), tf_type)
        buf.add_message(decoded, static=False)
    assert len(buf) == 3
    assert buf.time_range("odom", "base_link") == (100_500_000_000, 101_500_000_000)
    np.testing.assert_allclose(
        buf.lookup("odom", "laser", 101 * S), expected(45, (0.5, 0, 1)), atol=1e-12
    )


def test_add_message_written_to_and_read_from_a_ros2_mcap(tmp_path: Path) -> None:
    ts = typestore_with_tf(Stores.ROS2_HUMBLE)
    tf_type = "tf2_msgs/msg/TFMessage"
    tfmsg = ts.types[tf_type]
    bag = tmp_path / "tf_bag"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/tf", tf_type, typestore=ts)
        for i in range(5):
            t = 10 * S + i * 100_000_000
            one = transform_stamped(
                ts, (10, i * 100_000_000), ("map", "base"), xyz=[i, 0, 0], q=zrot(10 * i)
            )
            writer.write(conn, t, ts.serialize_cdr(tfmsg(transforms=[one]), tf_type))
    buf = TransformBuffer()
    with AnyReader([bag], default_typestore=ts) as reader:
        for c, _, raw in reader.messages():
            buf.add_message(reader.deserialize(raw, c.msgtype), static=False)
    assert len(buf) == 5
    np.testing.assert_allclose(
        buf.lookup("map", "base", 10 * S + 250_000_000), expected(25, (2.5, 0, 0)), atol=1e-12
    )


def _read_tf(path: Path) -> tuple[TransformBuffer, list[tuple[int, np.ndarray, np.ndarray]]]:
    buf = TransformBuffer()
    samples = []
    with AnyReader([path]) as reader:
        conns = [c for c in reader.connections if c.topic in {"/tf", "/tf_static"}]
        for conn, _, raw in reader.messages(connections=conns):
            msg: Any = reader.deserialize(raw, conn.msgtype)
            buf.add_message(msg, static=conn.topic == "/tf_static")
            for ts in msg.transforms:
                if ts.child_frame_id == "base_footprint":
                    st, tr, rot = ts.header.stamp, ts.transform.translation, ts.transform.rotation
                    samples.append(
                        (
                            st.sec * S + st.nanosec,
                            np.array([tr.x, tr.y, tr.z]),
                            np.array([rot.x, rot.y, rot.z, rot.w]),
                        )
                    )
    return buf, samples


def test_real_bag_tf_example() -> None:
    path = DATA / "ros1" / "tf_example.bag"
    if not path.exists():
        pytest.skip(f"real data not available at {path}")
    buf, samples = _read_tf(path)
    assert {"odom", "base_footprint", "base_link"} <= buf.frames()
    assert buf.parent_of("base_footprint") == "odom"
    # find two neighbouring samples that differ, so "between" means something
    stamps = np.array([s[0] for s in samples])
    order = np.argsort(stamps, kind="stable")
    pick = next(
        i
        for i in range(len(order) // 2, len(order) - 1)
        if stamps[order[i + 1]] > stamps[order[i]]
        and not np.allclose(samples[order[i]][1], samples[order[i + 1]][1])
    )
    t0, xyz0, q0 = samples[order[pick]]
    t1, xyz1, _ = samples[order[pick + 1]]
    at0 = buf.lookup("odom", "base_footprint", int(t0))
    np.testing.assert_allclose(at0[:3, 3], xyz0, atol=1e-12)
    np.testing.assert_allclose(at0[:3, :3], quat_to_matrix(q0), atol=1e-12)
    mid = buf.lookup("odom", "base_footprint", int((t0 + t1) // 2))[:3, 3]
    lo, hi = np.minimum(xyz0, xyz1), np.maximum(xyz0, xyz1)
    assert np.all(mid >= lo - 1e-12)
    assert np.all(mid <= hi + 1e-12)
    assert not np.allclose(mid, xyz0)
    # the static base_footprint -> base_link edge chains on top of the dynamic one
    np.testing.assert_allclose(buf.lookup("odom", "base_link", int(t0)), at0, atol=1e-12)
    start, end = buf.time_range("odom", "base_footprint") or (0, 0)
    traj = buf.lookup_many("odom", "base_link", np.linspace(start, end, 1000).astype(np.int64))
    assert traj.shape == (1000, 4, 4)
    assert np.isfinite(traj).all()
