"""The fault grammar, and the injector's decisions on a plain stream of stamps."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from bagscope.sim.choices import DEFAULT_DURATION_NS, FAULT_EXAMPLES, FAULT_MEANINGS, fault_syntax
from bagscope.sim.config import SimError, make_scenario
from bagscope.sim.faults import (
    DUPLICATE_GAP_NS,
    FAULT_KINDS,
    LATENCY_MAX_NS,
    LATENCY_MIN_NS,
    LATENCY_NOISE_NS,
    REORDER_GAP_NS,
    Delivery,
    FaultInjector,
    parse_duration,
    parse_faults,
)
from bagscope.sim.simulate import scenario_topics

TOPICS = {
    "/lidar/points": "sensor_msgs/msg/PointCloud2",
    "/camera/image/compressed": "sensor_msgs/msg/CompressedImage",
    "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
    "/imu": "sensor_msgs/msg/Imu",
    "/odom": "nav_msgs/msg/Odometry",
    "/tf": "tf2_msgs/msg/TFMessage",
}
FULL_SPEC = (
    "drop:/lidar/points=0.1,outage:/camera/image/compressed=12s+1.5s,"
    "delay:/camera/image/compressed=40ms,jitter:/lidar/points=5ms,"
    "clock_offset:/camera/image/compressed=-80ms,duplicate:/imu=0.01,"
    "reorder:/lidar/points=0.02,stale_tf:8s+2s,corrupt:/lidar/points=0.01,"
    "zero_stamps:/lidar/points=0.05,freeze:/lidar/points=5s+3s,"
    "blocked_sector:/lidar/points=4s+3s@30:90,drift:/lidar/points=2000ppm,"
    "pose_jump:/odom=6s+6m"
)
START = 1_000_000_000_000_000_000
MS = 1_000_000


def test_full_grammar_parses_every_kind() -> None:
    faults = parse_faults(FULL_SPEC, topics=TOPICS, duration_ns=20_000_000_000)
    assert [f.kind for f in faults] == [
        "drop",
        "outage",
        "delay",
        "jitter",
        "clock_offset",
        "duplicate",
        "reorder",
        "stale_tf",
        "corrupt",
        "zero_stamps",
        "freeze",
        "blocked_sector",
        "drift",
        "pose_jump",
    ]
    assert set(FAULT_KINDS) == {f.kind for f in faults}
    by_kind = {f.kind: f for f in faults}
    assert by_kind["drop"].probability == pytest.approx(0.1)
    assert (by_kind["outage"].start_ns, by_kind["outage"].length_ns) == (12 * 10**9, 1_500 * MS)
    assert by_kind["delay"].amount_ns == 40 * MS
    assert by_kind["jitter"].amount_ns == 5 * MS
    assert by_kind["clock_offset"].amount_ns == -80 * MS
    assert by_kind["stale_tf"].topic == "/tf"
    assert (by_kind["stale_tf"].start_ns, by_kind["stale_tf"].length_ns) == (8 * 10**9, 2 * 10**9)
    assert by_kind["corrupt"].text == "corrupt:/lidar/points=0.01"
    assert by_kind["zero_stamps"].probability == pytest.approx(0.05)
    assert (by_kind["freeze"].start_ns, by_kind["freeze"].length_ns) == (5 * 10**9, 3 * 10**9)
    sector = by_kind["blocked_sector"]
    assert (sector.start_ns, sector.length_ns, sector.azimuth_deg) == (
        4 * 10**9,
        3 * 10**9,
        (30, 90),
    )
    assert by_kind["drift"].ppm == 2000.0
    assert (by_kind["pose_jump"].start_ns, by_kind["pose_jump"].distance_m) == (6 * 10**9, 6.0)


@pytest.mark.parametrize(
    ("text", "ns"),
    [("40ms", 40 * MS), ("1.5s", 1_500 * MS), ("-80ms", -80 * MS), ("250us", 250_000), ("7ns", 7)],
)
def test_durations_are_exact_nanoseconds(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


def test_empty_spec_is_no_faults() -> None:
    assert parse_faults("") == ()
    assert parse_faults(" , ") == ()


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("explode:/imu=0.1", "unknown fault kind 'explode'"),
        ("drop/imu=0.1", "expected KIND:TOPIC=VALUE"),
        ("drop:/imu", "expected drop:/TOPIC=VALUE"),
        ("drop:imu=0.1", "expected drop:/TOPIC=VALUE"),
        ("drop:/imu=1.5", "probability must be a number in [0, 1]"),
        ("drop:/imu=-0.1", "probability must be a number in [0, 1]"),
        ("drop:/imu=lots", "probability must be a number in [0, 1]"),
        ("delay:/imu=fast", "bad delay"),
        ("delay:/imu=-5ms", "delay cannot be negative"),
        ("jitter:/imu=-1ms", "jitter cannot be negative"),
        ("delay:/imu=5parsecs", "unknown unit"),
        ("outage:/imu=12s", "window must be START+LENGTH"),
        ("outage:/imu=12s+0s", "LENGTH > 0"),
        ("outage:/imu=-1s+2s", "START >= 0"),
        ("stale_tf:soon", "window must be START+LENGTH"),
        ("delay:/imu=5ms,delay:/imu=6ms", "given twice"),
    ],
)
def test_malformed_specs_raise_one_clear_line(spec: str, fragment: str) -> None:
    with pytest.raises(SimError) as info:
        parse_faults(spec)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_topics_are_checked_against_the_drive() -> None:
    with pytest.raises(SimError, match="no topic /radar in this drive"):
        parse_faults("drop:/radar=0.1", topics=TOPICS)
    with pytest.raises(SimError, match="only point cloud and image topics"):
        parse_faults("corrupt:/imu=0.1", topics=TOPICS)
    with pytest.raises(SimError, match="after the 20 s drive ends"):
        parse_faults("outage:/imu=25s+1s", topics=TOPICS, duration_ns=20 * 10**9)


def _run(spec: str, topic: str, *, n: int, period_ns: int, seed: int = 0) -> list[Delivery]:
    injector = FaultInjector(parse_faults(spec), seed=seed, start_ns=START)
    out: list[Delivery] = []
    for k in range(n):
        out += injector.deliver(topic, START + k * period_ns)
    return out + injector.flush(not_before_ns=START + n * period_ns)


def test_no_fault_means_every_message_with_a_small_latency() -> None:
    out = _run("", "/imu", n=500, period_ns=10 * MS)
    assert len(out) == 500
    assert all(d.header_stamp_ns == d.stamp_ns for d in out)
    latency = np.array([d.log_ns - d.stamp_ns for d in out])
    assert latency.min() >= LATENCY_MIN_NS
    assert latency.max() <= LATENCY_MAX_NS + LATENCY_NOISE_NS
    assert np.ptp(latency) <= LATENCY_NOISE_NS


def test_drop_is_bernoulli_and_recorded() -> None:
    spec = "drop:/imu=0.2"
    injector = FaultInjector(parse_faults(spec), seed=3, start_ns=START)
    kept = [d for k in range(2000) for d in injector.deliver("/imu", START + k * 10 * MS)]
    dropped = injector.records[0].stamps_ns
    assert len(kept) + len(dropped) == 2000
    # binomial(2000, 0.2): sd ≈ 17.9, allow 4 sd
    assert abs(len(dropped) - 400) < 72
    assert not {d.stamp_ns for d in kept} & set(dropped)


def test_outage_removes_exactly_the_window() -> None:
    out = _run("outage:/imu=1s+250ms", "/imu", n=300, period_ns=10 * MS)
    offsets = {d.stamp_ns - START for d in out}
    assert len(out) == 300 - 25
    assert all(not (1_000 * MS <= o < 1_250 * MS) for o in offsets)


def test_delay_adds_exactly_to_the_latency() -> None:
    clean = _run("", "/imu", n=200, period_ns=10 * MS)
    late = _run("delay:/imu=40ms", "/imu", n=200, period_ns=10 * MS)
    assert [b.log_ns - a.log_ns for a, b in zip(clean, late, strict=True)] == [40 * MS] * 200


def test_jitter_and_clock_offset_move_only_the_header_stamp() -> None:
    clean = _run("", "/imu", n=4000, period_ns=MS)
    jittered = _run("jitter:/imu=5ms", "/imu", n=4000, period_ns=MS)
    shifted = _run("clock_offset:/imu=-80ms", "/imu", n=4000, period_ns=MS)
    noise = np.array([d.header_stamp_ns - d.stamp_ns for d in jittered])
    assert abs(noise.std() - 5 * MS) < 0.3 * MS
    assert abs(noise.mean()) < 0.5 * MS
    assert {d.header_stamp_ns - d.stamp_ns for d in shifted} == {-80 * MS}
    assert [d.log_ns for d in jittered] == [d.log_ns for d in clean]
    assert [d.log_ns for d in shifted] == [d.log_ns for d in clean]


def test_duplicates_arrive_just_after_the_original() -> None:
    out = _run("duplicate:/imu=0.1", "/imu", n=1000, period_ns=10 * MS)
    copies = [d for d in out if d.duplicate]
    assert 50 < len(copies) < 150
    originals = {d.stamp_ns: d for d in out if not d.duplicate}
    for copy in copies:
        assert copy.log_ns - originals[copy.stamp_ns].log_ns == DUPLICATE_GAP_NS
        assert copy.header_stamp_ns == originals[copy.stamp_ns].header_stamp_ns


def test_reorder_delivers_a_message_after_its_successor() -> None:
    spec = "reorder:/lidar/points=0.1"
    injector = FaultInjector(parse_faults(spec), seed=1, start_ns=START)
    out: list[Delivery] = []
    for k in range(500):
        out += injector.deliver("/lidar/points", START + k * 100 * MS)
    out += injector.flush(not_before_ns=START + 500 * 100 * MS)
    assert len(out) == 500
    by_log = sorted(out, key=lambda d: d.log_ns)
    inversions = [
        (a.stamp_ns, b.stamp_ns) for a, b in itertools.pairwise(by_log) if a.stamp_ns > b.stamp_ns
    ]
    reordered = injector.records[0].stamps_ns
    assert 20 < len(reordered) < 80
    assert sorted(later for _, later in inversions) == sorted(reordered)
    successors = {d.stamp_ns: d for d in out}
    for stamp in reordered:
        late = successors[stamp]
        assert late.log_ns == successors[stamp + 100 * MS].log_ns + REORDER_GAP_NS
        assert late.log_ns > late.stamp_ns  # late, never received before it existed


def test_stale_tf_silences_tf_in_the_window() -> None:
    out = _run("stale_tf:8s+2s", "/tf", n=1000, period_ns=20 * MS)
    offsets = sorted(d.stamp_ns - START for d in out)
    assert len(out) == 1000 - 100
    assert max(o for o in offsets if o < 10 * 10**9) < 8 * 10**9
    assert min(o for o in offsets if o >= 8 * 10**9) == 10 * 10**9


def test_corrupt_marks_messages_and_faults_are_independent() -> None:
    alone = _run("corrupt:/lidar/points=0.2", "/lidar/points", n=400, period_ns=100 * MS)
    mixed = _run(
        "drop:/lidar/points=0.3,corrupt:/lidar/points=0.2",
        "/lidar/points",
        n=400,
        period_ns=100 * MS,
    )
    bad_alone = {d.stamp_ns for d in alone if d.corrupt}
    bad_mixed = {d.stamp_ns for d in mixed if d.corrupt}
    assert 40 < len(bad_alone) < 120
    # adding a drop fault only removes messages: the corruption draws are unchanged
    assert bad_mixed == bad_alone & {d.stamp_ns for d in mixed}


def test_same_seed_same_decisions() -> None:
    a = _run(FULL_SPEC.replace("stale_tf:8s+2s,", ""), "/lidar/points", n=300, period_ns=MS)
    b = _run(FULL_SPEC.replace("stale_tf:8s+2s,", ""), "/lidar/points", n=300, period_ns=MS)
    c = _run(FULL_SPEC.replace("stale_tf:8s+2s,", ""), "/lidar/points", n=300, period_ns=MS, seed=9)
    assert a == b
    assert a != c


# What each placeholder of fault_syntax() stands for, as a pattern.
_PLACEHOLDERS = {
    "/TOPIC": r"/[a-z_/]+",
    "START": r"[\d.]+(?:ns|us|ms|s|m)",
    "LENGTH": r"[\d.]+(?:ns|us|ms|s|m)",
    "DURATION": r"-?[\d.]+(?:ns|us|ms|s|m)",
    "DISTANCE": r"-?[\d.]+m",
    "FROM": r"-?[\d.]+",
    "TO": r"-?[\d.]+",
    "N": r"-?[\d.]+",
    "P": r"[\d.]+",
}


def _syntax_pattern(kind: str) -> str:
    syntax = fault_syntax(kind)
    names = "|".join(re.escape(p) for p in _PLACEHOLDERS)
    parts = re.split(f"({names})", syntax)
    return "".join(_PLACEHOLDERS.get(part, re.escape(part)) for part in parts)


def test_every_kind_has_a_syntax_a_meaning_and_an_example_that_parses() -> None:
    # ``replay simulate --help`` shows fault_syntax(), FAULT_MEANINGS and FAULT_EXAMPLES: all
    # three must cover every kind the parser accepts, each example must be spelled as its
    # syntax says, and it must parse as that kind against the default drive's topics.
    assert list(FAULT_MEANINGS) == list(FAULT_KINDS) == list(FAULT_EXAMPLES)
    topics = scenario_topics(make_scenario("urban"))
    for kind in FAULT_KINDS:
        example = FAULT_EXAMPLES[kind]
        assert re.fullmatch(_syntax_pattern(kind), example), (kind, example)
        (fault,) = parse_faults(example, topics=topics, duration_ns=DEFAULT_DURATION_NS)
        assert (fault.kind, fault.text) == (kind, example)


def test_fault_errors_name_the_faults_argument() -> None:
    for spec in ("drop:/imu=2", "outage:/imu=soon", "bogus:/imu=1", "delay:/imu=5 parsecs"):
        with pytest.raises(SimError) as caught:
            parse_faults(spec, topics=TOPICS)
        assert caught.value.parameter == "faults"
