"""drift, zero_stamps, freeze, pose_jump and blocked_sector: grammar, decisions, written bytes.

The end-to-end tests simulate short drives into a temporary folder and read them back with
bagscope's own reader, comparing against a fault-free drive of the same seed: faults never
change the random streams of anything else, so every difference is the fault's. Expected values
are worked out here from first principles (tick stamps are ``start + round(k * 1e9 / rate)``),
not by calling the code under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bagscope import open_log
from bagscope.sim.config import make_scenario
from bagscope.sim.errors import SimError
from bagscope.sim.faults import Delivery, FaultInjector, parse_faults
from bagscope.sim.simulate import START_NS, scenario_topics, simulate
from bagscope.sim.truth import read_truth

MS = 1_000_000
S = 1_000_000_000
START = 1_000_000_000_000_000_000
SEED = 7
DURATION_NS = 3 * S
CAMERA_PHASE_NS = 7 * MS  # the default camera's phase after the lidar
LIDAR, CAMERA, INFO = "/lidar/points", "/camera/image/compressed", "/camera/camera_info"
GROUND_TRUTH = "/ground_truth/objects"


def _scenario() -> Any:
    return make_scenario(
        "urban", seed=SEED, duration_ns=DURATION_NS, beams=16, camera_size=(160, 90)
    )


TOPICS = scenario_topics(_scenario())


# -- grammar ---------------------------------------------------------------------------------


def test_new_kinds_parse_to_their_parameters() -> None:
    drift, back, zero, freeze, sector, wrapped, jump, jump_back = parse_faults(
        "drift:/imu=2000ppm,drift:/odom=-0.5PPM,zero_stamps:/imu=0.02,freeze:/imu=5s+3s,"
        "blocked_sector:/lidar/points=4s+3s@30:90,blocked_sector:/lidar/points=0s+1s@-45:45,"
        "pose_jump:/odom=6s+6m,pose_jump:/odom=1.5s+-2.5m",
        topics=TOPICS,
        duration_ns=20 * S,
    )
    assert (drift.ppm, back.ppm) == (2000.0, -0.5)
    assert zero.probability == 0.02
    assert (freeze.start_ns, freeze.length_ns) == (5 * S, 3 * S)
    assert (sector.start_ns, sector.length_ns, sector.azimuth_deg) == (4 * S, 3 * S, (30.0, 90.0))
    assert sector.sector() == (30.0, 60.0)
    assert wrapped.sector() == (315.0, 90.0)  # -180..180 and 0..360 are one circle
    assert (jump.start_ns, jump.distance_m) == (6 * S, 6.0)
    assert (jump_back.start_ns, jump_back.distance_m) == (1_500 * MS, -2.5)
    (full,) = parse_faults("blocked_sector:/lidar/points=0s+1s@0:360")
    assert full.sector() == (0.0, 360.0)
    (long_way,) = parse_faults("blocked_sector:/lidar/points=0s+1s@90:30")
    assert long_way.sector() == (90.0, 300.0)  # counterclockwise from FROM to TO


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "drift:/imu=2000",
            "bad fault 'drift:/imu=2000': drift must be a number of ppm between -1000000 and "
            "1000000, e.g. 2000ppm or -500ppm, got '2000'",
        ),
        (
            "drift:/imu=2ms",
            "bad fault 'drift:/imu=2ms': drift must be a number of ppm between -1000000 and "
            "1000000, e.g. 2000ppm or -500ppm, got '2ms'",
        ),
        (
            "drift:/imu=1000000ppm",
            "bad fault 'drift:/imu=1000000ppm': drift must be a number of ppm between -1000000 "
            "and 1000000, e.g. 2000ppm or -500ppm, got '1000000ppm'",
        ),
        (
            "drift:/imu=5ppm,drift:/imu=6ppm",
            "fault drift given twice for /imu: give one value",
        ),
        (
            "zero_stamps:/imu=1.5",
            "bad fault 'zero_stamps:/imu=1.5': probability must be a number in [0, 1], got '1.5'",
        ),
        (
            "freeze:/imu=3s",
            "bad fault 'freeze:/imu=3s': window must be START+LENGTH, e.g. 12s+1.5s",
        ),
        (
            "freeze:/imu=+3s",
            "bad fault 'freeze:/imu=+3s': window must be START+LENGTH, e.g. 12s+1.5s",
        ),
        (
            "pose_jump:/odom=6m",
            "bad fault 'pose_jump:/odom=6m': pose_jump must be START+DISTANCE, e.g. 6s+6m",
        ),
        (
            "pose_jump:/odom=+6m",
            "bad fault 'pose_jump:/odom=+6m': pose_jump must be START+DISTANCE, e.g. 6s+6m",
        ),
        (
            "pose_jump:/odom=6s+6",
            "bad fault 'pose_jump:/odom=6s+6': pose_jump DISTANCE must be a non-zero number of "
            "metres, e.g. 6m or -2.5m, got '6'",
        ),
        (
            "pose_jump:/odom=6s+0m",
            "bad fault 'pose_jump:/odom=6s+0m': pose_jump DISTANCE must be a non-zero number of "
            "metres, e.g. 6m or -2.5m, got '0m'",
        ),
        (
            "pose_jump:/odom=-1s+6m",
            "bad fault 'pose_jump:/odom=-1s+6m': pose_jump needs START >= 0",
        ),
        (
            "blocked_sector:/lidar/points=4s+3s",
            "bad fault 'blocked_sector:/lidar/points=4s+3s': blocked_sector must be "
            "START+LENGTH@FROM:TO, e.g. 4s+3s@30:90",
        ),
        (
            "blocked_sector:/lidar/points=@30:90",
            "bad fault 'blocked_sector:/lidar/points=@30:90': window must be START+LENGTH, "
            "e.g. 12s+1.5s",
        ),
        (
            "blocked_sector:/lidar/points=4s+3s@30",
            "bad fault 'blocked_sector:/lidar/points=4s+3s@30': sector must be FROM:TO, two "
            "different azimuths in degrees from -180 to 360, e.g. 30:90 or -45:45, got '30'",
        ),
        (
            "blocked_sector:/lidar/points=4s+3s@30:30",
            "bad fault 'blocked_sector:/lidar/points=4s+3s@30:30': sector must be FROM:TO, two "
            "different azimuths in degrees from -180 to 360, e.g. 30:90 or -45:45, got '30:30'",
        ),
        (
            "blocked_sector:/lidar/points=4s+3s@-200:30",
            "bad fault 'blocked_sector:/lidar/points=4s+3s@-200:30': sector must be FROM:TO, two "
            "different azimuths in degrees from -180 to 360, e.g. 30:90 or -45:45, got '-200:30'",
        ),
    ],
)
def test_malformed_new_kinds_are_one_exact_line(spec: str, message: str) -> None:
    with pytest.raises(SimError) as caught:
        parse_faults(spec)
    assert str(caught.value) == message
    assert caught.value.parameter == "faults"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "pose_jump:/imu=6s+6m",
            "fault 'pose_jump:/imu=6s+6m': pose_jump applies only to the odometry topic; use /odom",
        ),
        (
            "blocked_sector:/camera/image/compressed=1s+1s@30:90",
            "fault 'blocked_sector:/camera/image/compressed=1s+1s@30:90': blocked_sector applies "
            "only to the point cloud topic; use /lidar/points",
        ),
        (
            "pose_jump:/odom=3s+6m",
            "fault 'pose_jump:/odom=3s+6m' starts at 3 s, after the 3 s drive ends",
        ),
        (
            "freeze:/imu=4s+1s",
            "fault 'freeze:/imu=4s+1s' starts at 4 s, after the 3 s drive ends",
        ),
    ],
)
def test_new_kinds_are_checked_against_the_drive(spec: str, message: str) -> None:
    with pytest.raises(SimError) as caught:
        parse_faults(spec, topics=TOPICS, duration_ns=DURATION_NS)
    assert str(caught.value) == message


# -- the injector's decisions ----------------------------------------------------------------


def _ticks(rate_hz: float, n: int, phase_ns: int = 0) -> list[int]:
    return [START + phase_ns + round(k * 1e9 / rate_hz) for k in range(n)]


def _deliver(spec: str, stamps: dict[str, list[int]]) -> tuple[FaultInjector, list[Delivery]]:
    """Every stamp of every topic through one injector, in stamp order as the drive does."""
    injector = FaultInjector(parse_faults(spec), seed=3, start_ns=START, end_ns=START + 3 * S)
    order = sorted((stamp, topic) for topic, values in stamps.items() for stamp in values)
    out = [d for stamp, topic in order for d in injector.deliver(topic, stamp)]
    return injector, out


def _drift(elapsed_ns: int, ppm: int) -> int:
    """elapsed * ppm / 1e6 rounded half away from zero, in integers only."""
    product = elapsed_ns * ppm
    magnitude = (abs(product) + 500_000) // 1_000_000
    return magnitude if product >= 0 else -magnitude


def test_drift_shifts_each_header_by_its_elapsed_time_times_ppm() -> None:
    stamps = _ticks(30, 90, CAMERA_PHASE_NS)
    _, fast = _deliver("drift:/cam=2000ppm", {"/cam": stamps})
    _, slow = _deliver("drift:/cam=-750ppm", {"/cam": stamps})
    _, clean = _deliver("", {"/cam": stamps})
    for d in (*fast, *slow):  # no exact ties below, so the tie rule does not matter here
        assert (d.stamp_ns - START) * 2000 % 1_000_000 != 500_000
    assert [d.header_stamp_ns - d.stamp_ns for d in fast] == [
        _drift(s - START, 2000) for s in stamps
    ]
    assert [d.header_stamp_ns - d.stamp_ns for d in slow] == [
        _drift(s - START, -750) for s in stamps
    ]
    assert fast[1].header_stamp_ns - fast[1].stamp_ns == 80_667  # 40_333_333 ns * 2000e-6
    assert [d.log_ns for d in fast] == [d.log_ns for d in clean]


def test_zero_stamps_zeroes_headers_only_and_lists_exactly_those() -> None:
    stamps = _ticks(100, 300)
    injector, out = _deliver("zero_stamps:/imu=0.3,clock_offset:/imu=5ms", {"/imu": stamps})
    _, clean = _deliver("", {"/imu": stamps})
    zeroed = [d.stamp_ns for d in out if d.header_stamp_ns == 0]
    assert 50 < len(zeroed) < 130
    assert injector.records[0].stamps_ns == zeroed
    assert {d.header_stamp_ns - d.stamp_ns for d in out if d.header_stamp_ns} == {5 * MS}
    assert [d.log_ns for d in out] == [d.log_ns for d in clean]
    record = injector.records[0].to_json()
    assert (record["start_ns"], record["end_ns"]) == (zeroed[0], zeroed[-1])


def test_a_dropped_message_is_not_also_a_zeroed_or_frozen_one() -> None:
    stamps = _ticks(10, 30)
    injector, out = _deliver("drop:/x=1.0,zero_stamps:/x=1.0,freeze:/x=1s+1s", {"/x": stamps})
    assert out == []
    drop, zero, freeze = (r.to_json() for r in injector.records)
    assert drop["stamps_ns"] == stamps
    assert (zero["count"], zero["start_ns"], zero["end_ns"]) == (0, None, None)
    assert (freeze["count"], freeze["frozen_content_ns"]) == (0, None)


def test_freeze_repeats_the_last_content_before_the_window() -> None:
    stamps = _ticks(10, 30)
    injector, out = _deliver("freeze:/x=1s+0.5s,freeze:/y=0s+0.25s", {"/x": stamps, "/y": stamps})
    x = [d for d in out if d.topic == "/x"]
    y = [d for d in out if d.topic == "/y"]
    assert [d.content_ns for d in x] == [None] * 10 + [START + 900 * MS] * 5 + [None] * 15
    assert [d.header_stamp_ns for d in x] == stamps  # fresh stamps
    # a window from the first message on repeats that first message
    assert [d.content_ns for d in y] == [START] * 3 + [None] * 27
    frozen_x, frozen_y = (r.to_json() for r in injector.records)
    assert frozen_x["stamps_ns"] == stamps[10:15]
    assert frozen_x["frozen_content_ns"] == START + 900 * MS
    assert (frozen_x["start_ns"], frozen_x["end_ns"]) == (START + S, START + 1_500 * MS)
    assert frozen_x["window_ns"] == [START + S, START + 1_500 * MS]
    assert (frozen_y["stamps_ns"], frozen_y["frozen_content_ns"]) == (stamps[:3], START)


def test_pose_jump_steps_odometry_and_tf_from_its_instant() -> None:
    odom, tf = _ticks(50, 150), _ticks(50, 150)
    injector, out = _deliver(
        "pose_jump:/odom=1s+6m,pose_jump:/odom=2s+-1m", {"/odom": odom, "/tf": tf}
    )
    for topic in ("/odom", "/tf"):
        jumps = [d.pose_jumps for d in out if d.topic == topic]
        first, second = (START + S, 6.0), (START + 2 * S, -1.0)
        assert jumps == [()] * 50 + [(first,)] * 50 + [(first, second)] * 50
    one, two = (r.to_json() for r in injector.records)
    assert one["stamps_ns"] == odom[50:]  # the odometry messages, not /tf's
    assert (one["start_ns"], one["end_ns"]) == (START + S, START + S)
    assert one["parameters"] == {"at_ns": S, "distance_m": 6.0}
    assert two["parameters"] == {"at_ns": 2 * S, "distance_m": -1.0}


def test_blocked_sector_marks_the_sweeps_in_its_window() -> None:
    stamps = _ticks(10, 30)
    injector, out = _deliver(
        "blocked_sector:/l=1s+0.5s@30:90,blocked_sector:/l=1.2s+0.5s@-45:45", {"/l": stamps}
    )
    a, b = (30.0, 60.0), (315.0, 90.0)
    assert [d.blocked_deg for d in out] == (
        [()] * 10 + [(a,)] * 2 + [(a, b)] * 3 + [(b,)] * 2 + [()] * 13
    )
    first, second = (r.to_json() for r in injector.records)
    assert first["stamps_ns"] == stamps[10:15]
    assert first["parameters"] == {"start_ns": S, "length_ns": 500 * MS, "azimuth_deg": [30, 90]}
    assert second["parameters"]["azimuth_deg"] == [-45.0, 45.0]


def test_every_kind_states_when_it_was_in_effect() -> None:
    stamps = _ticks(100, 300)
    spec = (
        "drop:/imu=0.1,duplicate:/imu=0.1,reorder:/imu=0.1,corrupt:/imu=0.1,"
        "zero_stamps:/imu=0.1,outage:/imu=1s+0.5s,stale_tf:2s+0.2s,freeze:/imu=0.2s+0.3s,"
        "delay:/imu=1ms,jitter:/imu=1ms,clock_offset:/imu=1ms,drift:/imu=1ppm,"
        "drop:/imu=0.0"
    )
    injector, _ = _deliver(spec, {"/imu": stamps, "/tf": _ticks(50, 150)})
    extents = {
        r.fault.text: (r.to_json()["start_ns"], r.to_json()["end_ns"]) for r in injector.records
    }
    for record in injector.records[:5]:
        hits = record.stamps_ns
        assert hits
        assert extents[record.fault.text] == (min(hits), max(hits))
    assert extents["outage:/imu=1s+0.5s"] == (START + S, START + 1_500 * MS)
    assert extents["stale_tf:2s+0.2s"] == (START + 2 * S, START + 2_200 * MS)
    assert extents["freeze:/imu=0.2s+0.3s"] == (START + 200 * MS, START + 500 * MS)
    for whole in ("delay:/imu=1ms", "jitter:/imu=1ms", "clock_offset:/imu=1ms", "drift:/imu=1ppm"):
        assert extents[whole] == (START, START + 3 * S)
    assert extents["drop:/imu=0.0"] == (None, None)


# -- written logs ------------------------------------------------------------------------------

STAMP_SPEC = (
    "drift:/imu=2000ppm,drift:/camera/camera_info=-750ppm,"
    "zero_stamps:/camera/image/compressed=1.0,zero_stamps:/tf=0.3"
)
FREEZE_SPEC = (
    "freeze:/camera/image/compressed=1s+1s,freeze:/lidar/points=1s+1s,"
    "freeze:/imu=0.7s+0.4s,freeze:/odom=0s+0.5s"
)
GEOMETRY_SPEC = (
    "pose_jump:/odom=1.5s+6m,blocked_sector:/lidar/points=1s+1s@30:90,"
    "blocked_sector:/lidar/points=2.2s+0.5s@-45:45"
)


@dataclass(frozen=True, slots=True)
class Got:
    """One message as read back: log time, header stamp (-1 for TF, whose stamps are per
    transform), raw bytes and the decoded message."""

    log_ns: int
    stamp_ns: int
    raw: bytes
    msg: Any


def read(path: Path, topic: str) -> list[Got]:
    with open_log(path) as log:
        return [
            Got(m.log_time_ns, _no_header_is_minus_one(m.header_stamp_ns), bytes(m.data), m.payload)
            for m in log.messages(topics=[topic])
        ]


def _no_header_is_minus_one(stamp: int | None) -> int:
    return -1 if stamp is None else stamp


def body(got: Got) -> bytes:
    """The bytes after the header stamp: CDR's 4-byte encapsulation and ROS1's seq both end
    where the stamp (sec, nanosec) begins, so byte 12 on is the same in either format."""
    return got.raw[12:]


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("new_faults")
    specs = {"clean": None, "stamps": STAMP_SPEC, "freeze": FREEZE_SPEC, "geometry": GEOMETRY_SPEC}
    return {
        name: simulate(root / f"{name}.mcap", scenario=_scenario(), faults=spec).log_path
        for name, spec in specs.items()
    }


def _true_imu() -> list[int]:
    return [START_NS + round(k * 1e9 / 100) for k in range(300)]


def _true_camera() -> list[int]:
    return [START_NS + CAMERA_PHASE_NS + round(k * 1e9 / 30) for k in range(90)]


def test_drift_in_the_log(logs: dict[str, Path]) -> None:
    imu, clean = read(logs["stamps"], "/imu"), read(logs["clean"], "/imu")
    truth = _true_imu()
    assert [m.stamp_ns for m in clean] == truth
    assert [m.stamp_ns for m in imu] == [t + _drift(t - START_NS, 2000) for t in truth]
    assert imu[200].stamp_ns - truth[200] == 4_000_000  # 2 s at 2000 ppm
    assert [m.log_ns for m in imu] == [m.log_ns for m in clean]
    assert [body(m) for m in imu] == [body(m) for m in clean]
    info = read(logs["stamps"], INFO)
    assert [m.stamp_ns for m in info] == [t + _drift(t - START_NS, -750) for t in _true_camera()]
    record = next(
        f for f in read_truth(logs["stamps"])["faults"] if f["spec"] == "drift:/imu=2000ppm"
    )
    assert record["parameters"] == {"ppm": 2000.0}
    assert record["stamps_ns"] == truth
    assert (record["start_ns"], record["end_ns"]) == (START_NS, START_NS + DURATION_NS)


def test_zero_stamps_in_the_log(logs: dict[str, Path]) -> None:
    images, clean = read(logs["stamps"], CAMERA), read(logs["clean"], CAMERA)
    assert len(images) == 90
    assert {m.stamp_ns for m in images} == {0}
    assert [m.log_ns for m in images] == [m.log_ns for m in clean]  # received as before
    assert [body(m) for m in images] == [body(m) for m in clean]
    faults = {f["spec"]: f for f in read_truth(logs["stamps"])["faults"]}
    record = faults["zero_stamps:/camera/image/compressed=1.0"]
    assert record["stamps_ns"] == _true_camera()
    assert (record["count"], record["start_ns"], record["end_ns"]) == (
        90,
        _true_camera()[0],
        _true_camera()[-1],
    )
    tf, clean_tf = read(logs["stamps"], "/tf"), read(logs["clean"], "/tf")

    def stamp(m: Got) -> int:
        header = m.msg.transforms[0].header.stamp
        return int(header.sec * S + header.nanosec)

    zeroed = [stamp(c) for m, c in zip(tf, clean_tf, strict=True) if stamp(m) == 0]
    assert zeroed == faults["zero_stamps:/tf=0.3"]["stamps_ns"]
    assert 0 < len(zeroed) < len(tf)
    assert all(stamp(m) in {0, stamp(c)} for m, c in zip(tf, clean_tf, strict=True))


@pytest.mark.parametrize(
    ("topic", "begin_ms", "end_ms", "source_ms"),
    [
        (CAMERA, 1000, 2000, 973.666667),  # 7 ms + 29 frames of 33.3 ms
        (LIDAR, 1000, 2000, 900),
        ("/imu", 700, 1100, 690),
        ("/odom", 0, 500, 0),  # a window from the start repeats the first message
    ],
)
def test_freeze_repeats_content_with_fresh_headers(
    logs: dict[str, Path], topic: str, begin_ms: int, end_ms: int, source_ms: float
) -> None:
    frozen, clean = read(logs["freeze"], topic), read(logs["clean"], topic)
    assert [m.stamp_ns for m in frozen] == [m.stamp_ns for m in clean]  # fresh header stamps
    begin, end = START_NS + begin_ms * MS, START_NS + end_ms * MS
    source = START_NS + round(source_ms * MS)
    (original,) = [m for m in clean if m.stamp_ns == source]
    inside = [m for m in frozen if begin <= m.stamp_ns < end]
    assert len(inside) > 3
    assert all(body(m) == body(original) for m in inside)
    outside = [(m, c) for m, c in zip(frozen, clean, strict=True) if m not in inside]
    assert all(m.raw == c.raw for m, c in outside)  # untouched, byte for byte
    assert all(body(m) != body(original) for m, _ in outside if m.stamp_ns != source)
    record = next(f for f in read_truth(logs["freeze"])["faults"] if f["topic"] == topic)
    assert record["stamps_ns"] == [m.stamp_ns for m in inside]
    assert record["frozen_content_ns"] == source
    assert (record["start_ns"], record["end_ns"]) == (begin, end)


def test_freeze_leaves_the_ground_truth_of_a_frozen_lidar_alone(logs: dict[str, Path]) -> None:
    truth, clean = read(logs["freeze"], GROUND_TRUTH), read(logs["clean"], GROUND_TRUTH)
    assert [m.raw for m in truth] == [m.raw for m in clean]


def test_freeze_in_a_ros1_bag_differs_only_in_seq_and_stamp(tmp_path: Path) -> None:
    from dataclasses import replace

    base = _scenario()
    scenario = replace(
        base,
        duration_ns=500 * MS,
        cameras=tuple(replace(c, compressed=False) for c in base.cameras),
    )
    out = simulate(
        tmp_path / "f.bag", scenario=scenario, faults="freeze:/camera/image_raw=0.1s+0.2s"
    ).log_path
    images = read(out, "/camera/image_raw")
    # frames 3..8 (107 ms .. 273.7 ms) repeat frame 2 (73.7 ms)
    assert [m.msg.header.seq for m in images] == list(range(15))
    assert all(body(m) == body(images[2]) for m in images[3:9])
    assert all(body(m) != body(images[2]) for m in images[9:] + images[:2])
    assert len({m.raw[:12] for m in images}) == 15


def _position(m: Got) -> np.ndarray:
    p = m.msg.pose.pose.position
    return np.array([p.x, p.y, p.z])


def _translation(m: Got) -> np.ndarray:
    t = m.msg.transforms[0].transform.translation
    return np.array([t.x, t.y, t.z])


def _differing(a: Got, b: Got) -> int:
    """How long the stretch of bytes is that two same-sized messages differ in."""
    assert len(a.raw) == len(b.raw)
    where = [i for i, (x, y) in enumerate(zip(a.raw, b.raw, strict=True)) if x != y]
    return where[-1] - where[0] + 1 if where else 0


def _yaw(q: Any) -> float:
    return math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))


def test_pose_jump_moves_odometry_and_tf_only(logs: dict[str, Path]) -> None:
    at = START_NS + 1_500 * MS
    odom, clean = read(logs["geometry"], "/odom"), read(logs["clean"], "/odom")
    (at_jump,) = [c for c in clean if c.stamp_ns == at]
    yaw = _yaw(at_jump.msg.pose.pose.orientation)
    step = 6.0 * np.array([math.cos(yaw), math.sin(yaw), 0.0])
    assert len(odom) == len(clean) == 150
    for m, c in zip(odom, clean, strict=True):
        assert m.stamp_ns == c.stamp_ns
        if m.stamp_ns < at:
            assert m.raw == c.raw
            continue
        offset = _position(m) - _position(c)
        assert np.linalg.norm(offset) == pytest.approx(6.0, abs=1e-6)
        assert offset == pytest.approx(step, abs=1e-6)
        assert _differing(m, c) <= 24  # only the position's three float64s changed
    tf, clean_tf = read(logs["geometry"], "/tf"), read(logs["clean"], "/tf")
    jumped = 0
    for m, c in zip(tf, clean_tf, strict=True):
        header = c.msg.transforms[0].header.stamp
        if header.sec * S + header.nanosec < at:
            assert m.raw == c.raw
            continue
        jumped += 1
        assert _translation(m) - _translation(c) == pytest.approx(step, abs=1e-6)
        assert _differing(m, c) <= 24
    assert jumped == 75
    record = next(f for f in read_truth(logs["geometry"])["faults"] if f["kind"] == "pose_jump")
    assert record["offset_m"] == pytest.approx(step, abs=1e-9)
    assert (record["start_ns"], record["end_ns"]) == (at, at)
    assert record["stamps_ns"] == [c.stamp_ns for c in clean if c.stamp_ns >= at]
    # the world the sensors see does not move
    for topic in (CAMERA, INFO, "/imu", GROUND_TRUTH, "/tf_static"):
        assert [m.raw for m in read(logs["geometry"], topic)] == [
            m.raw for m in read(logs["clean"], topic)
        ], topic


def _points(m: Got) -> np.ndarray:
    dtype = np.dtype(
        {"names": ["x", "y"], "formats": ["<f4", "<f4"], "offsets": [0, 4], "itemsize": 24}
    )
    return np.frombuffer(bytes(m.msg.data), dtype=dtype)


def _azimuth(points: np.ndarray) -> np.ndarray:
    """Degrees in [0, 360), counterclockwise from the lidar's x axis."""
    return (
        np.degrees(np.arctan2(points["y"].astype(np.float64), points["x"].astype(np.float64))) % 360
    )


def test_blocked_sector_removes_returns_in_its_azimuths(logs: dict[str, Path]) -> None:
    clouds, clean = read(logs["geometry"], LIDAR), read(logs["clean"], LIDAR)
    assert len(clouds) == len(clean) == 30
    ninety = ((a := _azimuth(_points(clean[0]))) > 30) & (a < 90)
    assert ninety.sum() > 100  # the urban drive has returns all around
    for k, (m, c) in enumerate(zip(clouds, clean, strict=True)):
        az, clean_az = _azimuth(_points(m)), _azimuth(_points(c))
        in_first, in_second = 10 <= k < 20, 22 <= k < 27
        if not (in_first or in_second):
            assert m.raw == c.raw
            assert ((clean_az > 30) & (clean_az < 90)).sum() > 100
            continue
        # exactly the true sweep's returns outside the sector(s), in the same order
        keep = np.ones(len(clean_az), dtype=bool)
        if in_first:
            assert not ((az > 30) & (az < 90)).any()
            keep &= ~((clean_az >= 30) & (clean_az <= 90))
        if in_second:
            assert not ((az > 315) | (az < 45)).any()
            keep &= ~((clean_az >= 315) | (clean_az <= 45))
        assert 0 < keep.sum() < len(keep)
        want = np.frombuffer(bytes(c.msg.data), dtype=np.uint8).reshape(-1, 24)[keep]
        assert bytes(m.msg.data) == want.tobytes()
        assert m.msg.width == keep.sum()
        assert m.msg.row_step == 24 * m.msg.width
    assert [m.raw for m in read(logs["geometry"], GROUND_TRUTH)] == [
        m.raw for m in read(logs["clean"], GROUND_TRUTH)
    ]


def test_new_faults_write_the_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    spec = f"{FREEZE_SPEC},{GEOMETRY_SPEC},zero_stamps:/tf=0.3,drift:/imu=2000ppm"
    scenario = make_scenario(
        "urban", seed=SEED, duration_ns=DURATION_NS, beams=16, camera_size=(32, 18)
    )
    pooled = simulate(tmp_path / "a" / "d.mcap", scenario=scenario, faults=spec, workers=2)
    inline = simulate(tmp_path / "b" / "d.mcap", scenario=scenario, faults=spec, workers=0)
    assert pooled.log_path.read_bytes() == inline.log_path.read_bytes()
    assert pooled.truth_path.read_bytes() == inline.truth_path.read_bytes()


def test_sidecar_shape_of_the_new_kinds(logs: dict[str, Path]) -> None:
    faults = [
        f for name in ("stamps", "freeze", "geometry") for f in read_truth(logs[name])["faults"]
    ]
    common = {"spec", "kind", "topic", "parameters", "start_ns", "end_ns", "count", "stamps_ns"}
    extra = {
        "drift": set(),
        "zero_stamps": set(),
        "freeze": {"window_ns", "frozen_content_ns"},
        "blocked_sector": {"window_ns"},
        "pose_jump": {"offset_m", "tf_topic"},
    }
    for record in faults:
        assert set(record) == common | extra[record["kind"]], record["kind"]
        assert record["count"] == len(record["stamps_ns"])
    sector = next(f for f in faults if f["spec"].endswith("@-45:45"))
    assert sector["parameters"] == {
        "start_ns": 2_200 * MS,
        "length_ns": 500 * MS,
        "azimuth_deg": [-45.0, 45.0],
    }
    assert sector["window_ns"] == [START_NS + 2_200 * MS, START_NS + 2_700 * MS]
    assert sector["stamps_ns"] == [START_NS + k * 100 * MS for k in range(22, 27)]
    jump = next(f for f in faults if f["kind"] == "pose_jump")
    assert jump["parameters"] == {"at_ns": 1_500 * MS, "distance_m": 6.0}
    assert jump["tf_topic"] == "/tf"
