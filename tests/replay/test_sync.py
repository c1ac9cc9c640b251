"""Sync policies on hand-built stamp streams.

The ApproximateTime cases are ROS 2 ``message_filters``' own unit tests
(``test/test_approximate_time_policy.cpp``), ported literally: same inputs in the same order,
same expected sets. Cases marked "ROS output" were produced by running the ROS 2 policy header
(``sync_policies/approximate_time.hpp``) itself on the given input; they pin behaviour the
upstream tests leave open (``max_interval``, ``age_penalty``, overflow with three topics).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bagscope.replay.errors import SyncError
from bagscope.replay.sync import ApproximateTimeSync, ExactTimeSync, NearestSync

if TYPE_CHECKING:
    from bagscope.replay.sync import SyncPolicy

S = 1_000_000_000  # one second in ns
MS = 1_000_000

Stream = list[tuple[int, int]]  # (stamp in seconds, topic index), in arrival order


def run_approx(
    stream: Stream,
    *,
    n_topics: int = 2,
    queue_size: int = 10,
    unit: int = S,
    **options: object,
) -> tuple[list[tuple[int, ...]], list[int]]:
    """Feed a ROS-test style stream; return the sets (as stamps in ``unit``) and, per set, the
    index of the input whose arrival emitted it."""
    topics = [f"t{i}" for i in range(n_topics)]
    sync: ApproximateTimeSync[int] = ApproximateTimeSync(
        topics,
        queue_size=queue_size,
        **options,  # type: ignore[arg-type]
    )
    sets: list[tuple[int, ...]] = []
    emitted_at: list[int] = []
    for position, (stamp, topic) in enumerate(stream):
        for found in sync.add(topics[topic], stamp * unit, stamp):
            sets.append(found)
            emitted_at.append(position)
    assert sync.emitted == len(sets)
    return sets, emitted_at


# ---------------------------------------------------------------------------------------------
# ROS message_filters test_approximate_time_policy.cpp, two topics
# ---------------------------------------------------------------------------------------------

ROS_TWO_TOPIC_CASES = {
    # Input A:  a..b..c / Input B:  A..B..C / Output: a..b..c / A..B..C
    "ExactMatch": ([(0, 0), (0, 1), (3, 0), (3, 1), (6, 0), (6, 1)], 10, [(0, 0), (3, 3), (6, 6)]),
    # Input A:  a..b..c. / Input B:  .A..B..C / Output: ...a..b. / ...A..B.
    "PerfectMatch": ([(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)], 10, [(0, 1), (3, 4)]),
    # Input A:  a.xb..c. / Input B:  .A...B.C / Output: ..a...c. / ..A...B.
    "ImperfectMatch": (
        [(0, 0), (1, 1), (2, 0), (3, 0), (5, 1), (6, 0), (7, 1)],
        10,
        [(0, 1), (6, 5)],
    ),
    # Input A:  a...........b....c. / Input B:  .......A.......B..C
    "Acceleration": (
        [(0, 0), (7, 1), (12, 0), (15, 1), (17, 0), (18, 1)],
        10,
        [(12, 7), (17, 18)],
    ),
    # Queue size 1 (too small). Input A: a...b...c.d..e. / Input B: .A.B...C...D..E
    "DroppedMessages_q1": (
        [(0, 0), (1, 1), (3, 1), (4, 0), (7, 1), (8, 0), (10, 0), (11, 1), (13, 0), (14, 1)],
        1,
        [(4, 3), (10, 11)],
    ),
    # Queue size 2 (just enough), same input.
    "DroppedMessages_q2": (
        [(0, 0), (1, 1), (3, 1), (4, 0), (7, 1), (8, 0), (10, 0), (11, 1), (13, 0), (14, 1)],
        2,
        [(0, 1), (4, 3), (8, 7), (10, 11)],
    ),
    # Queue size 5. Input A: abcdefghiklmnp. / Input B: ...j......o....
    "LongQueue": (
        [(t, 0) for t in range(9)] + [(3, 1)] + [(t, 0) for t in range(9, 13)] + [(10, 1), (13, 0)],
        5,
        [(10, 10)],
    ),
    # Input A:  a..b / Input B:  .A.B ; B arrives before b: both sets come out at once.
    "DoublePublish": ([(0, 0), (1, 1), (3, 1), (3, 0)], 10, [(0, 1), (3, 3)]),
}

# When each set is emitted, read off the diagrams' output rows (index into the input stream).
ROS_TWO_TOPIC_EMITTED_AT = {
    "ExactMatch": [1, 3, 5],
    "PerfectMatch": [2, 4],  # a..b. : on b's and c's arrival
    "ImperfectMatch": [2, 5],  # on x's and c's arrival
    "Acceleration": [2, 5],
    "DroppedMessages_q1": [4, 8],
    "DroppedMessages_q2": [3, 4, 7, 8],
    "LongQueue": [14],
    "DoublePublish": [3, 3],
}


@pytest.mark.parametrize("name", list(ROS_TWO_TOPIC_CASES))
def test_ros_two_topic_cases(name: str) -> None:
    stream, queue_size, expected = ROS_TWO_TOPIC_CASES[name]
    sets, emitted_at = run_approx(stream, queue_size=queue_size)
    assert sets == expected
    assert emitted_at == ROS_TWO_TOPIC_EMITTED_AT[name]


def test_ros_four_topics() -> None:
    # Time:     012345678901234
    # Input A:  a....e..i.m..n.
    # Input B:  .b....g..j....o
    # Input C:  ..c...h...k....
    # Input D:  ...d.f.....l...
    # Output:   ......a....e..m / b g j / c h k / d f l
    stream = [(0, 0), (1, 1), (2, 2), (3, 3), (5, 0), (5, 3), (6, 1), (6, 2)]
    stream += [(8, 0), (9, 1), (10, 2), (11, 3), (10, 0), (13, 0), (14, 1)]
    sets, emitted_at = run_approx(stream, n_topics=4)
    assert sets == [(0, 1, 2, 3), (5, 6, 6, 5), (10, 9, 10, 11)]
    # The diagram is loose about the second set: the ROS header emits it on i's arrival (8 s),
    # when no later set can beat it any more. (ROS output)
    assert [stream[i][0] for i in emitted_at] == [6, 8, 14]


def test_ros_early_publish() -> None:
    # Input A: a......e / B: .b...... / C: ..c..... / D: ...d.... -> a b c d out at e's arrival:
    # e is so late that no later set could beat the one held.
    stream = [(0, 0), (1, 1), (2, 2), (3, 3), (7, 0)]
    sets, emitted_at = run_approx(stream, n_topics=4)
    assert sets == [(0, 1, 2, 3)]
    assert emitted_at == [4]


@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        # Rate bound A: 1.5 s -> the last set cannot be proven optimal yet.
        (3 * S // 2, [(0, 1), (3, 4)]),
        # Rate bound A: 2 s -> c's set is proven optimal as soon as C arrives.
        (2 * S, [(0, 1), (3, 4), (6, 7)]),
    ],
)
def test_ros_rate_bound(bound: int, expected: list[tuple[int, int]]) -> None:
    stream = [(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)]
    sets, _ = run_approx(stream, inter_message_lower_bound={"t0": bound})
    assert sets == expected


def test_without_rate_bound_the_last_set_waits() -> None:
    stream = [(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)]
    sets, emitted_at = run_approx(stream)
    assert sets == [(0, 1), (3, 4)]
    assert emitted_at == [2, 4]


# ---------------------------------------------------------------------------------------------
# Options the upstream tests leave open (expected values: ROS output)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_interval", "expected"),
    [
        (None, [(12, 7), (17, 18)]),
        (1 * S, []),
        (2 * S, [(17, 18)]),
        # a (0 s) cannot pair with A (7 s); b+A at exactly 5 s is allowed and makes A the pivot
        # ... which changes the winner to B (15 s) for b.
        (5 * S, [(12, 15)]),
        (5 * S - 1, [(17, 15)]),
    ],
)
def test_max_interval(max_interval: int | None, expected: list[tuple[int, int]]) -> None:
    stream = [(0, 0), (7, 1), (12, 0), (15, 1), (17, 0), (18, 1)]
    sets, _ = run_approx(stream, max_interval=max_interval)
    assert sets == expected


def fate(sync: Any) -> dict[str, tuple[int, int, int]]:
    """Per topic (used, not needed, dropped): every message fed lands in exactly one."""
    return {t: (sync.used[t], sync.not_needed[t], sync.dropped[t]) for t in sync.topics}


def test_max_interval_smaller_than_every_gap_emits_nothing_and_drops() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(
        ["a", "b"], queue_size=10, max_interval=S // 2
    )
    for stamp, topic in [(0, "a"), (1, "b"), (3, "a"), (4, "b"), (6, "a"), (7, "b")]:
        assert sync.add(topic, stamp * S, f"{topic}{stamp}") == []
    assert sync.flush() == []
    assert sync.emitted == 0
    # The policy passes every message over for a later one; a frame stream, seeing no frame
    # anywhere near them, counts them dropped (tests/replay/test_frame_accounting.py).
    assert fate(sync) == {"a": (0, 3, 0), "b": (0, 3, 0)}


@pytest.mark.parametrize(
    ("age_penalty", "expected"),
    [
        # Candidate (1, 7) spans 6 s; (10, 7) spans 3 s but is 3 s newer: with penalty p it wins
        # when 3 * (1 + p) < 6.
        (0.0, [(10, 7)]),
        (0.1, [(10, 7)]),
        (0.99, [(10, 7)]),
        (1.0, [(1, 7)]),  # 3 * 2 == 6: a tie keeps the older candidate
        (2.0, [(1, 7)]),
    ],
)
def test_age_penalty(age_penalty: float, expected: list[tuple[int, int]]) -> None:
    sets, emitted_at = run_approx([(1, 0), (7, 1), (10, 0)], age_penalty=age_penalty)
    assert sets == expected
    assert emitted_at == [2]


@pytest.mark.parametrize(
    ("queue_size", "expected"),
    [
        (1, [(4000, 4200, 4100)]),
        (2, [(3000, 3050, 2900), (4000, 4200, 4100)]),
        (3, [(3000, 3050, 2900), (4000, 4200, 4100)]),
    ],
)
def test_three_topics_queue_overflow(queue_size: int, expected: list[tuple[int, ...]]) -> None:
    # Topic 0 runs ahead while topics 1 and 2 stall: a small queue forgets 3000 ms. (ROS output)
    stream = [(0, 0), (100, 1), (1000, 0), (2000, 0), (3000, 0), (2900, 2), (3050, 1)]
    stream += [(4000, 0), (4100, 2), (4200, 1), (5000, 0)]
    sets, _ = run_approx(stream, n_topics=3, queue_size=queue_size, unit=MS)
    assert sets == expected


def test_nine_topics_exact_stamps() -> None:
    topics = [f"cam{i}" for i in range(9)]
    sync: ApproximateTimeSync[tuple[str, int]] = ApproximateTimeSync(topics, queue_size=3)
    out = []
    for stamp in (0, 100 * MS, 200 * MS):
        for topic in topics:
            out += sync.add(topic, stamp, (topic, stamp))
    assert out == [tuple((topic, stamp) for topic in topics) for stamp in (0, 100 * MS, 200 * MS)]


def test_items_are_opaque_and_returned_in_topic_order() -> None:
    sync: ApproximateTimeSync[object] = ApproximateTimeSync(["lidar", "cam"], queue_size=5)
    lidar, cam = object(), None  # None is a legitimate item
    assert sync.add("cam", 5, cam) == []
    assert sync.add("lidar", 5, lidar) == [(lidar, cam)]
    assert sync.topics == ("lidar", "cam")


# ---------------------------------------------------------------------------------------------
# Dropped counts and flush
# ---------------------------------------------------------------------------------------------


def test_dropped_counts_imperfect_match() -> None:
    sync: ApproximateTimeSync[int] = ApproximateTimeSync(["a", "b"], queue_size=10)
    stream = [(0, "a"), (1, "b"), (2, "a"), (3, "a"), (5, "b"), (6, "a"), (7, "b")]
    out = []
    for stamp, topic in stream:
        out += sync.add(topic, stamp * S, stamp)
    assert out == [(0, 1), (6, 5)]
    # x (2 s) and b (3 s) can never be used once c (6 s) made a better candidate: not needed.
    assert fate(sync) == {"a": (2, 2, 0), "b": (2, 0, 0)}
    # Nothing can pair with C (7 s) any more once the log ends.
    assert sync.flush() == []
    assert fate(sync) == {"a": (2, 2, 0), "b": (2, 1, 0)}


def test_dropped_counts_small_queue() -> None:
    sync: ApproximateTimeSync[int] = ApproximateTimeSync(["a", "b"], queue_size=1)
    stream = [(0, 0), (1, 1), (3, 1), (4, 0), (7, 1), (8, 0), (10, 0), (11, 1), (13, 0), (14, 1)]
    out = []
    for stamp, topic in stream:
        out += sync.add("ab"[topic], stamp * S, stamp)
    assert out == [(4, 3), (10, 11)]
    flushed = sync.flush()
    assert flushed == [(13, 14)]
    assert sync.emitted == 3
    # On a: 0 s overflows the one-message queue (dropped), 8 s loses to 10 s (not needed);
    # on b: 1 s overflows, 7 s loses to 11 s.
    assert fate(sync) == {"a": (3, 1, 1), "b": (3, 1, 1)}


def test_flush_emits_the_held_candidate() -> None:
    sync: ApproximateTimeSync[int] = ApproximateTimeSync(["a", "b"], queue_size=10)
    out = []
    for stamp, topic in [(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)]:
        out += sync.add("ab"[topic], stamp * S, stamp)
    assert out == [(0, 1), (3, 4)]
    assert sync.flush() == [(6, 7)]
    assert sync.emitted == 3
    assert sync.dropped == {"a": 0, "b": 0}
    # The policy is empty again: a new stream starts from scratch.
    assert sync.flush() == []
    assert sync.add("a", 100 * S, 100) == []
    assert sync.add("b", 100 * S, 100) == [(100, 100)]


def test_flush_four_topics_waiting_for_a_late_message() -> None:
    sync: ApproximateTimeSync[int] = ApproximateTimeSync(list("abcd"), queue_size=10)
    for stamp, topic in [(0, "a"), (1, "b"), (2, "c"), (3, "d")]:
        assert sync.add(topic, stamp * S, stamp) == []
    assert sync.flush() == [(0, 1, 2, 3)]


def test_flush_keeps_one_use_per_message() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(["a", "b"], queue_size=10)
    for stamp, topic in [(0, "a"), (10, "a"), (11, "b")]:
        sync.add(topic, stamp * MS, f"{topic}{stamp}")
    assert sync.flush() == [("a10", "b11")]
    assert fate(sync) == {"a": (1, 1, 0), "b": (1, 0, 0)}


def test_out_of_order_and_bound_warnings() -> None:
    sync: ApproximateTimeSync[int] = ApproximateTimeSync(
        ["a", "b"], queue_size=10, inter_message_lower_bound={"b": 50 * MS}
    )
    sync.add("a", 10 * MS, 1)
    sync.add("a", 5 * MS, 2)  # out of order
    sync.add("b", 100 * MS, 3)
    sync.add("b", 120 * MS, 4)  # closer than its 50 ms bound
    assert sync.bound_warnings == ("a", "b")


# ---------------------------------------------------------------------------------------------
# Real recorded log: SICK lidar + radar; expected sets are ROS's output on these stamps
# ---------------------------------------------------------------------------------------------

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SICK_BAG = DATA / "ros1" / "sick_lms1xx_rms_radar.bag"
SICK_TOPICS = ["/cloud", "/cloud_radar_rawtarget", "/cloud_radar_track"]


def read_sick_stamps() -> list[tuple[str, int]]:
    from rosbags.highlevel import AnyReader

    stamps = []
    with AnyReader([SICK_BAG]) as reader:
        connections = [c for c in reader.connections if c.topic in SICK_TOPICS]
        for connection, _, raw in reader.messages(connections=connections):
            stamp = reader.deserialize(raw, connection.msgtype).header.stamp  # type: ignore[attr-defined]
            stamps.append((connection.topic, stamp.sec * S + stamp.nanosec))
    return stamps


@pytest.mark.parametrize(
    ("queue_size", "max_interval", "count", "first", "last", "digest"),
    [
        (10, None, 76, (15, 7, 1), (333, 323, 317), "575af68e1bb7b36d"),
        (5, 20 * MS, 17, (16, 10, 2), (315, 307, 299), "63594d431efeded0"),
        (2, None, 13, (73, 69, 61), (315, 310, 302), "cd7035391cbb7dd0"),
    ],
)
def test_real_lidar_radar_log_matches_ros(
    queue_size: int,
    max_interval: int | None,
    count: int,
    first: tuple[int, ...],
    last: tuple[int, ...],
    digest: str,
) -> None:
    if not SICK_BAG.exists():
        pytest.skip(f"shared test data not available: {SICK_BAG}")
    stamps = read_sick_stamps()
    assert len(stamps) == 336
    sync: ApproximateTimeSync[int] = ApproximateTimeSync(
        SICK_TOPICS, queue_size=queue_size, max_interval=max_interval
    )
    sets: list[tuple[int, ...]] = []
    for arrival, (topic, stamp) in enumerate(stamps):
        sets += sync.add(topic, stamp, arrival)
    assert len(sets) == count
    assert sets[0] == first
    assert sets[-1] == last
    assert hashlib.sha256(json.dumps(sets).encode()).hexdigest()[:16] == digest
    used = {arrival for found in sets for arrival in found}
    assert len(used) == 3 * count  # each message in at most one set


# ---------------------------------------------------------------------------------------------
# ExactTimeSync (ROS message_filters test_exact_time_policy.cpp, then our own)
# ---------------------------------------------------------------------------------------------


def test_exact_multiple_times() -> None:
    sync: ExactTimeSync[str] = ExactTimeSync(["a", "b", "c"], queue_size=2)
    assert sync.add("a", 0, "a0") == []
    assert sync.add("b", 100 * MS, "b1") == []
    assert sync.add("a", 100 * MS, "a1") == []
    assert sync.add("c", 100 * MS, "c1") == [("a1", "b1", "c1")]
    # The older, incomplete stamp 0 can no longer complete: passed over with the emission.
    assert fate(sync) == {"a": (1, 1, 0), "b": (1, 0, 0), "c": (1, 0, 0)}


def test_exact_queue_size() -> None:
    sync: ExactTimeSync[str] = ExactTimeSync(["a", "b", "c"], queue_size=1)
    assert sync.add("a", 0, "a0") == []
    assert sync.add("b", 0, "b0") == []
    assert sync.add("b", 100 * MS, "b1") == []  # pushes stamp 0 out of the queue
    # Stamp 0 starts afresh but is older than 100 ms, so it is the one pushed out, each time.
    assert sync.add("b", 0, "b0'") == []
    assert sync.add("c", 0, "c0") == []
    assert sync.emitted == 0
    assert fate(sync) == {"a": (0, 0, 1), "b": (0, 0, 2), "c": (0, 0, 1)}  # queue overflows


def test_exact_drop_on_queue_overflow() -> None:
    sync: ExactTimeSync[str] = ExactTimeSync(["a", "b"], queue_size=1)
    sync.add("a", 0, "a0")
    assert sync.dropped == {"a": 0, "b": 0}
    sync.add("a", 100 * MS, "a1")
    assert sync.dropped == {"a": 1, "b": 0}


def test_exact_time_stream() -> None:
    sync: ExactTimeSync[str] = ExactTimeSync(["lidar", "cam"])
    out = []
    out += sync.add("lidar", 100, "l100")
    out += sync.add("cam", 101, "c101")  # never matched
    out += sync.add("lidar", 200, "l200")
    out += sync.add("cam", 200, "c200")
    out += sync.add("cam", 300, "c300")
    out += sync.add("cam", 300, "c300'")  # same stamp again: replaces the first
    out += sync.add("lidar", 300, "l300")
    out += sync.add("lidar", 400, "l400")
    assert out == [("l200", "c200"), ("l300", "c300'")]
    assert sync.emitted == 2
    # l100 and c101 never coincided, c300 was replaced by c300': all passed over, none lost.
    assert fate(sync) == {"lidar": (2, 1, 0), "cam": (2, 2, 0)}
    assert sync.flush() == []
    assert fate(sync) == {"lidar": (2, 2, 0), "cam": (2, 2, 0)}


def test_exact_late_message_for_an_old_stamp_still_matches() -> None:
    # As in ROS: pruning happens on emission, not on arrival.
    sync: ExactTimeSync[str] = ExactTimeSync(["a", "b"])
    sync.add("a", 200, "a200")
    assert sync.add("b", 200, "b200") == [("a200", "b200")]
    sync.add("a", 100, "a100")
    assert sync.add("b", 100, "b100") == [("a100", "b100")]


# ---------------------------------------------------------------------------------------------
# NearestSync
# ---------------------------------------------------------------------------------------------


def test_nearest_waits_until_the_choice_is_final() -> None:
    sync: NearestSync[str] = NearestSync("cam", ["lidar"], slop=40 * MS)
    assert sync.topics == ("cam", "lidar")
    assert sync.add("lidar", 0, "l0") == []
    assert sync.add("cam", 10 * MS, "c10") == []
    # A lidar at exactly ref + slop would still be a candidate: not final yet.
    assert sync.add("lidar", 50 * MS, "l50") == []
    assert sync.add("lidar", 50 * MS + 1, "l50+") == [("c10", "l0")]


def test_nearest_picks_the_nearest_and_reuses_partners() -> None:
    sync: NearestSync[str] = NearestSync("cam", ["lidar"], slop=40 * MS)
    stream = [
        ("lidar", 0),
        ("cam", 10),  # -> l0
        ("cam", 45),  # l0 45 ms, l100 55 ms: neither within 40 ms -> dropped
        ("cam", 60),  # l100 at exactly 40 ms -> taken
        ("lidar", 100),
        ("cam", 95),  # -> l100
        ("cam", 130),  # -> l100 again (a partner may serve several references)
        ("lidar", 200),
        ("lidar", 300),
    ]
    out = []
    for topic, stamp in stream:
        out += sync.add(topic, stamp * MS, f"{topic[0]}{stamp}")
    assert out == [("c10", "l0"), ("c60", "l100"), ("c95", "l100"), ("c130", "l100")]
    assert sync.emitted == 4
    # c45 had no partner within slop: a reference with no frame possible is dropped.
    assert fate(sync) == {"cam": (4, 0, 1), "lidar": (2, 0, 0)}  # a later image may pick l200
    assert sync.flush() == []
    # The log ended: l200 and l300 were not needed by any reference.
    assert fate(sync) == {"cam": (4, 0, 1), "lidar": (2, 2, 0)}


def test_nearest_slop_boundary_is_inclusive() -> None:
    sync: NearestSync[str] = NearestSync("ref", ["a", "b"], slop=10)
    sync.add("a", 90, "a90")  # exactly slop before
    sync.add("b", 111, "b111")  # slop + 1 after
    sync.add("ref", 100, "r100")
    sync.add("b", 110, "b110")  # arrives late, out of order: still considered, exactly slop
    assert sync.add("a", 200, "a200") == [("r100", "a90", "b110")]


def test_nearest_tie_goes_to_the_earlier_stamp() -> None:
    sync: NearestSync[str] = NearestSync("ref", ["a"], slop=10)
    sync.add("a", 95, "a95")
    sync.add("a", 105, "a105")
    sync.add("ref", 100, "r100")
    assert sync.add("a", 111, "a111") == [("r100", "a95")]


def test_nearest_several_others_and_flush() -> None:
    sync: NearestSync[str] = NearestSync("cam", ["lidar", "radar"], slop=20)
    assert sync.add("cam", 100, "c100") == []
    assert sync.add("lidar", 95, "l95") == []
    assert sync.add("radar", 130, "r130") == []  # radar final for c100 (130 > 120), lidar not
    assert sync.add("cam", 200, "c200") == []
    assert sync.add("lidar", 121, "l121") == []  # lidar final too, but r130 is out of slop
    assert sync.dropped["cam"] == 1
    assert sync.add("radar", 205, "r205") == []
    # End of the log: c200 is decided with what is known (l121 is 79 away -> no partner).
    assert sync.flush() == []
    assert fate(sync) == {"cam": (0, 0, 2), "lidar": (0, 2, 0), "radar": (0, 2, 0)}
    assert sync.emitted == 0


def test_nearest_flush_emits_pending_references() -> None:
    sync: NearestSync[str] = NearestSync("cam", ["lidar", "radar"], slop=20)
    sync.add("cam", 100, "c100")
    sync.add("lidar", 105, "l105")
    sync.add("radar", 90, "r90")
    assert sync.flush() == [("c100", "l105", "r90")]
    assert fate(sync) == {"cam": (1, 0, 0), "lidar": (1, 0, 0), "radar": (1, 0, 0)}


def test_nearest_queue_size_bounds_waiting_references() -> None:
    sync: NearestSync[int] = NearestSync("cam", ["lidar"], slop=5, queue_size=2)
    sync.add("lidar", 0, -1)
    assert sync.add("cam", 1, 1) == []
    assert sync.add("cam", 2, 2) == []
    # The lidar has stalled: the third waiting image forces a decision on the oldest.
    assert sync.add("cam", 3, 3) == [(1, -1)]


def test_nearest_memory_stays_flat_on_a_long_stream() -> None:
    sync: NearestSync[int] = NearestSync("cam", ["lidar"], slop=20 * MS)
    emitted = 0
    for k in range(3000):
        if k % 3 == 0:
            emitted += len(sync.add("lidar", k * 33 * MS + 2 * MS, k))
        emitted += len(sync.add("cam", k * 33 * MS, k))
    assert len(sync._buffers[0]) <= 3
    assert len(sync._pending) <= 4
    emitted += len(sync.flush())
    assert emitted == sync.emitted
    assert emitted + sync.dropped["cam"] == 3000
    assert sum(fate(sync)["lidar"]) == 1000


# ---------------------------------------------------------------------------------------------
# Configuration errors and the common protocol
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: ApproximateTimeSync(["a"], queue_size=5),
        lambda: ApproximateTimeSync(["a", "a"], queue_size=5),
        lambda: ApproximateTimeSync(["a", "b"], queue_size=0),
        lambda: ApproximateTimeSync(["a", "b"], queue_size=5, max_interval=-1),
        lambda: ApproximateTimeSync(["a", "b"], queue_size=5, age_penalty=-0.1),
        lambda: ApproximateTimeSync(["a", "b"], queue_size=5, age_penalty=float("nan")),
        lambda: ApproximateTimeSync(["a", "b"], queue_size=5, inter_message_lower_bound={"c": 1}),
        lambda: ApproximateTimeSync(["a", "b"], queue_size=5, inter_message_lower_bound={"a": -1}),
        lambda: ExactTimeSync([], queue_size=5),
        lambda: ExactTimeSync(["a", "b"], queue_size=0),
        lambda: ExactTimeSync(["a", "b", "a"]),
        lambda: NearestSync("a", [], slop=5),
        lambda: NearestSync("a", ["a"], slop=5),
        lambda: NearestSync("a", ["b"], slop=-1),
        lambda: NearestSync("a", ["b"], slop=1, queue_size=0),
    ],
)
def test_invalid_configuration(make: object) -> None:
    with pytest.raises(SyncError):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    "policy",
    [
        ApproximateTimeSync(["a", "b"], queue_size=5),
        ExactTimeSync(["a", "b"]),
        NearestSync("a", ["b"], slop=5),
    ],
    ids=["approximate", "exact", "nearest"],
)
def test_unknown_topic(policy: SyncPolicy[int]) -> None:
    with pytest.raises(SyncError, match="'c'"):
        policy.add("c", 0, 0)


def test_common_protocol_drives_every_policy() -> None:
    policies: list[SyncPolicy[str]] = [
        ApproximateTimeSync(["lidar", "cam"], queue_size=5),
        ExactTimeSync(["lidar", "cam"]),
        NearestSync("lidar", ["cam"], slop=0),
    ]
    for policy in policies:
        out = []
        for stamp in (0, 100, 200):
            out += policy.add("lidar", stamp, f"l{stamp}")
            out += policy.add("cam", stamp, f"c{stamp}")
        out += policy.flush()
        assert out == [("l0", "c0"), ("l100", "c100"), ("l200", "c200")], type(policy)
        assert policy.emitted == 3
        assert policy.dropped == {"lidar": 0, "cam": 0}
        assert policy.topics == ("lidar", "cam")
