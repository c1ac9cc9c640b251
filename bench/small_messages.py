"""Many small messages through the sqlite3 path: bagscope against bare sqlite3 and rosbags.

A GPS/INS recording is the opposite of a camera + lidar log: hundreds of thousands of ~700-byte
messages, where per-message overhead, not bytes, decides the speed. This writes (once, cached in
bench/.cache) an equivalent of a real 550 MB ROS2 sqlite3 recording with 785,819 messages —
nav_msgs/Odometry at 200 Hz, sensor_msgs/Imu at 50 Hz and sensor_msgs/NavSatFix at 10 Hz, written
with rosbags' Writer (sqlite3, rosbag2 version 9) — then measures side by side, each as a whole
process (wall time, best of 3, page cache warm; peak RSS of that process):
  (a) bare sqlite3: SELECT topic_id, timestamp FROM messages ORDER BY timestamp, every row fetched,
  (b) `replay info LOG`,
  (c) `replay info --no-gaps LOG`,
  (d) rosbags raw iteration (rosbag2.Reader, every (connection, timestamp, rawdata), no decoding;
      each message's topic and time looked at, as (e) does),
  (e) bagscope open_log(...).messages() over every message, touching .topic and .log_time_ns,
  (f) `replay frames LOG --sync /ins/odometry,/gps/fix --policy nearest --slop 50ms`.

    python bench/small_messages.py [--quick] [--repeat 3]
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
FULL = 785_819
QUICK = 50_000
ODOM, IMU, FIX = "/ins/odometry", "/ins/imu", "/gps/fix"
# topic: (type, rate Hz, receive latency ms): what a typical INS driver publishes.
TOPICS = {
    ODOM: ("nav_msgs/msg/Odometry", 200, 1.5),
    IMU: ("sensor_msgs/msg/Imu", 50, 1.0),
    FIX: ("sensor_msgs/msg/NavSatFix", 10, 4.0),
}
SYNC = f"{ODOM},{FIX}"
T0 = 1_700_000_000 * 10**9


# --- the log ---------------------------------------------------------------------------------


def _templates() -> dict[str, bytes]:
    """One serialized message per topic; stamps are patched in per message."""
    import numpy as np
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    t = ts.types
    stamp = t["builtin_interfaces/msg/Time"](sec=0, nanosec=0)
    vec = t["geometry_msgs/msg/Vector3"](x=0.1, y=0.2, z=9.81)
    quat = t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.38, w=0.92)
    cov36, cov9 = np.full(36, 1e-3), np.full(9, 1e-3)

    def header(frame: str) -> object:
        return t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)

    odom = t["nav_msgs/msg/Odometry"](
        header=header("odom"),
        child_frame_id="base_link",
        pose=t["geometry_msgs/msg/PoseWithCovariance"](
            pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](x=4120.5, y=-233.25, z=12.0),
                orientation=quat,
            ),
            covariance=cov36,
        ),
        twist=t["geometry_msgs/msg/TwistWithCovariance"](
            twist=t["geometry_msgs/msg/Twist"](linear=vec, angular=vec), covariance=cov36
        ),
    )
    imu = t["sensor_msgs/msg/Imu"](
        header=header("imu_link"),
        orientation=quat,
        orientation_covariance=cov9,
        angular_velocity=vec,
        angular_velocity_covariance=cov9,
        linear_acceleration=vec,
        linear_acceleration_covariance=cov9,
    )
    fix = t["sensor_msgs/msg/NavSatFix"](
        header=header("gps"),
        status=t["sensor_msgs/msg/NavSatStatus"](status=2, service=1),
        latitude=48.137,
        longitude=11.575,
        altitude=519.0,
        position_covariance=cov9,
        position_covariance_type=2,
    )
    msgs = {ODOM: odom, IMU: imu, FIX: fix}
    return {topic: bytes(ts.serialize_cdr(msgs[topic], TOPICS[topic][0])) for topic in TOPICS}


def _schedule(messages: int) -> list[tuple[int, int, str]]:
    """(log time, stamp, topic) of every message, in log-time order, exactly ``messages`` long."""
    import numpy as np

    rng = np.random.default_rng(0)
    per_second = sum(rate for _, rate, _ in TOPICS.values())
    seconds = messages / per_second + 1
    events: list[tuple[int, int, str]] = []
    for topic, (_, rate, latency_ms) in TOPICS.items():
        n = int(seconds * rate)
        stamps = T0 + np.arange(n, dtype=np.int64) * (10**9 // rate)
        jitter = rng.integers(0, 500_000, size=n)  # receive jitter, up to 0.5 ms
        logged = np.maximum.accumulate(stamps + int(latency_ms * 1e6) + jitter)
        events += zip(logged.tolist(), stamps.tolist(), [topic] * n, strict=True)
    events.sort()
    return events[:messages]


def _write_log(path: Path, messages: int) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    templates = {topic: bytearray(raw) for topic, raw in _templates().items()}
    # Written elsewhere and moved in whole: rosbags names the .db3 after its directory.
    tmp = path.parent / ".partial" / path.name
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(exist_ok=True)
    with Writer(tmp, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conns = {
            topic: writer.add_connection(topic, msgtype, typestore=ts)
            for topic, (msgtype, _, _) in TOPICS.items()
        }
        for log_time, stamp, topic in _schedule(messages):
            raw = templates[topic]
            sec, nsec = divmod(stamp, 10**9)
            raw[4:8] = sec.to_bytes(4, "little")  # after the 4-byte CDR encapsulation header
            raw[8:12] = nsec.to_bytes(4, "little")
            writer.write(conns[topic], log_time, bytes(raw))
    tmp.rename(path)


def ensure_log(messages: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"gps_ins_{messages}"
    if not path.exists():
        print(f"writing {path.name} (cached for later runs) ...", file=sys.stderr, flush=True)
        # In a child: rosbags and numpy would grow this process, and a child's peak RSS can
        # only be told apart from the parent's above the parent's own (see run_once).
        me = [sys.executable, str(Path(__file__).resolve())]
        subprocess.run([*me, "--build", str(messages), str(path)], check=True)
    return path


def db3(path: Path) -> Path:
    return next(path.glob("*.db3"))


# --- what runs in the measured processes ---------------------------------------------------


def child_sqlite(path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(f"{db3(path).resolve().as_uri()}?mode=ro", uri=True)
    rows = db.execute("SELECT topic_id, timestamp FROM messages ORDER BY timestamp").fetchall()
    return len(rows)


def child_rosbags(path: Path) -> int:
    from rosbags.rosbag2 import Reader

    n = 0
    with Reader(path) as reader:
        for conn, t, _raw in reader.messages():
            _ = conn.topic  # the same look at each message as the bagscope child takes
            _ = t
            n += 1
    return n


def child_bagscope(path: Path) -> int:
    from bagscope import open_log

    n = 0
    with open_log(path) as log:
        for msg in log.messages():
            _ = msg.topic
            _ = msg.log_time_ns
            n += 1
    return n


def child_split(path: Path) -> str:
    """Where bagscope's time goes, one in-process timer per step (for whoever tunes which part).

    Storage is what `open_storage` returns; the Log wraps every raw message in a `Message`.
    """
    from collections import deque

    start = time.perf_counter()
    from bagscope import open_log
    from bagscope.replay.rates import topic_times

    steps = {"import bagscope.replay.log": time.perf_counter() - start}

    def step(name: str, work: object) -> None:
        begin = time.perf_counter()
        work()  # type: ignore[operator]
        steps[name] = time.perf_counter() - begin

    logs = []
    step("open_log (storage opens and checks)", lambda: logs.append(open_log(path)))
    storage = logs[0].storage
    step("storage.times() (info's gaps)", storage.times)
    step("storage.times(ends_only=True)", lambda: storage.times(ends_only=True))
    step("topic_times(storage) (rates + gaps)", lambda: topic_times(storage))
    step("storage.messages(), all", lambda: deque(storage.messages(), maxlen=0))

    def touch() -> None:
        for msg in logs[0].messages():
            _ = msg.topic
            _ = msg.log_time_ns

    step("Log.messages(), all, touched", touch)
    return "\n".join(f"  {name:40} {seconds:7.3f} s" for name, seconds in steps.items())


CHILDREN = {
    "sqlite": child_sqlite,
    "rosbags": child_rosbags,
    "bagscope": child_bagscope,
    "split": child_split,
}


def _replay() -> list[str]:
    script = Path(sys.executable).parent / "replay"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bagscope"]


def variants(path: Path) -> dict[str, list[str]]:
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    return {
        "a:sqlite3 SELECT": [*me, "sqlite", str(path)],
        "b:replay info": [*_replay(), "info", str(path)],
        "c:replay info --no-gaps": [*_replay(), "info", "--no-gaps", str(path)],
        "d:rosbags raw": [*me, "rosbags", str(path)],
        "e:bagscope messages()": [*me, "bagscope", str(path)],
        "f:replay frames": [
            *_replay(),
            "frames",
            str(path),
            "--sync",
            SYNC,
            "--policy",
            "nearest",
            "--slop",
            "50ms",
        ],
    }


# --- measuring -----------------------------------------------------------------------------


def run_once(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS MB of that process, and its stdout.

    The RSS is the child's ``ru_maxrss`` from wait4. Linux carries the parent's peak into a
    child across fork/exec, so a figure at the parent's own peak (printed as the floor) may be
    the parent's; this process therefore imports nothing heavy.
    """
    # stdout goes to a file, not a pipe: nobody reads a pipe while we wait, so it could fill.
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr)
        # wait4, not wait: its rusage is this child's (RUSAGE_CHILDREN keeps a running maximum).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        if proc.returncode != 0:
            msg = f"{argv} exited with {proc.returncode}: {stderr.read().decode()[-2000:]}"
            raise RuntimeError(msg)
        return wall, usage.ru_maxrss / 1024, stdout.read().decode(errors="replace")


def warm(path: Path) -> None:
    """Read the log once so every variant finds it in the page cache."""
    block = bytearray(1 << 20)  # small: this process's peak is the floor of the children's
    with db3(path).open("rb", buffering=0) as file:
        while file.readinto(block):
            pass


def topic_counts(path: Path) -> dict[str, int]:
    import sqlite3

    db = sqlite3.connect(f"{db3(path).resolve().as_uri()}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT topics.name, COUNT(*) FROM messages JOIN topics ON topics.id = messages.topic_id "
        "GROUP BY topics.name"
    ).fetchall()
    db.close()
    return {str(name): int(n) for name, n in rows}


def bench(messages: int, repeat: int) -> None:
    path = ensure_log(messages)
    size = db3(path).stat().st_size
    counts = topic_counts(path)
    total = sum(counts.values())
    warm(path)
    print(
        f"== {path.name}: {total:,} messages, {size / 1e6:.0f} MB sqlite3 "
        f"(avg {size / total:.0f} B/message): "
        + ", ".join(f"{t} {n:,}" for t, n in counts.items())
        + f"; best of {repeat}, whole processes =="
    )
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(peak RSS floor: this process's own {floor:.0f} MB)")
    print(f"{'variant':26} {'s':>7} {'msgs/s':>10} {'MB/s':>8} {'peak RSS MB':>12}")
    best: dict[str, float] = {}
    rates: dict[str, float] = {}
    for name, argv in variants(path).items():
        runs = [run_once(argv) for _ in range(repeat)]
        wall = min(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        # `replay frames` reads its synced topics only (this log has no TF to read besides).
        n = counts[ODOM] + counts[FIX] if name.startswith("f:") else total
        best[name[0]] = wall
        rates[name[0]] = n / wall
        print(f"{name:26} {wall:7.3f} {n / wall:10,.0f} {size / 1e6 / wall:8.0f} {rss:12.0f}")
    print(f"info/(a)            = {best['b'] / best['a']:.2f}  (target <= 1.5)")
    print(f"info --no-gaps/(a)  = {best['c'] / best['a']:.2f}")
    print(f"(e)/(d) msgs/s      = {rates['e'] / rates['d']:.2f}  (target >= 1.0)")
    print(f"(f)/(d) msgs/s      = {rates['f'] / rates['d']:.2f}  (f reads {ODOM} and {FIX} only)")
    startup, _, _ = min(run_once([sys.executable, "-c", "pass"]) for _ in range(repeat))
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    print(f"where bagscope's time goes (one process; python itself starts in {startup:.3f} s):")
    print(run_once([*me, "split", str(path)])[2].rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK:,}-message log")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (best counts)")
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--build", nargs=2, metavar=("MESSAGES", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(CHILDREN[args.child[0]](Path(args.child[1])))
        return
    if args.build:
        _write_log(Path(args.build[1]), int(args.build[0]))
        return
    # Byte-compiled as an installed wheel would be (see bench/replay_throughput.py).
    compileall.compile_dir(Path(__file__).resolve().parents[1] / "bagscope", quiet=1)
    bench(QUICK if args.quick else FULL, args.repeat)


if __name__ == "__main__":
    main()
