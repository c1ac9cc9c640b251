"""Replay throughput and memory: bagscope against the libraries underneath it, in one run.

Writes (once, cached in bench/.cache) a log of 64k-point lidar at 10 Hz and 1080p JPEG camera at
30 Hz as MCAP and as sqlite3, then measures side by side, each in its own process so peak RSS is
its own:
  (a) the `mcap` library's raw message iteration (MCAP only),
  (b) rosbags AnyReader + deserialize of every message,
  (c) bagscope frames() with the lidar xyz touched (summed over), images not decoded,
 (c0) (c) with the xyz view made but not summed: bagscope's own cost,
  (d) (c) with every JPEG decoded.
Then the same on a 4x longer log to show that memory stays flat.

    python bench/replay_throughput.py [--seconds 30] [--scale 4] [--skip-long]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"
LIDAR = "/lidar/points"
CAMERA = "/camera/image/compressed"
POINTS = 65_536


def _write_log(path: Path, seconds: float, storage: str) -> None:
    import simplejpeg
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    types = ts.types
    rng = np.random.default_rng(0)
    dtype = np.dtype(
        {
            "names": ["x", "y", "z", "intensity", "ring", "t"],
            "formats": ["<f4", "<f4", "<f4", "<f4", "<u2", "<f4"],
            "offsets": [0, 4, 8, 12, 16, 20],
            "itemsize": 24,
        }
    )
    clouds = []
    for _ in range(4):
        pts = np.zeros(POINTS, dtype=dtype)
        for name in ("x", "y", "z", "intensity", "t"):
            pts[name] = rng.normal(size=POINTS) * 20
        pts["ring"] = np.arange(POINTS) % 64
        clouds.append(np.frombuffer(pts.tobytes(), dtype=np.uint8))
    yy, xx = np.mgrid[0:1080, 0:1920]
    jpegs = []
    for k in range(8):
        img = np.stack(
            [(xx + 9 * k) % 256, (yy + 5 * k) % 256, ((xx ^ yy) + k) % 256], axis=-1
        ).astype(np.uint8)
        # Mild sensor-like noise: 1080p frames of ~300 KB, as real cameras produce at q=90.
        img += rng.integers(0, 4, size=img.shape, dtype=np.uint8)
        jpegs.append(np.frombuffer(simplejpeg.encode_jpeg(img, quality=90), dtype=np.uint8))
    fields = [
        types["sensor_msgs/msg/PointField"](name=n, offset=o, datatype=d, count=1)
        for n, o, d in [
            ("x", 0, 7),
            ("y", 4, 7),
            ("z", 8, 7),
            ("intensity", 12, 7),
            ("ring", 16, 4),
            ("t", 20, 7),
        ]
    ]

    def header(t: int, frame: str) -> object:
        stamp = types["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9)
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    t0 = 1_700_000_000 * 10**9
    with Writer(tmp, version=9, storage_plugin=plugin) as writer:
        lid = writer.add_connection(LIDAR, "sensor_msgs/msg/PointCloud2", typestore=ts)
        cam = writer.add_connection(CAMERA, "sensor_msgs/msg/CompressedImage", typestore=ts)
        events = [(round(i * 1e8), "l", i) for i in range(round(seconds * 10))]
        events += [(round(i * 1e9 / 30) + 4_000_000, "c", i) for i in range(round(seconds * 30))]
        for dt, kind, i in sorted(events):
            t = t0 + dt
            if kind == "l":
                msg = types["sensor_msgs/msg/PointCloud2"](
                    header=header(t, "lidar"),
                    height=1,
                    width=POINTS,
                    fields=fields,
                    is_bigendian=False,
                    point_step=24,
                    row_step=24 * POINTS,
                    data=clouds[i % len(clouds)],
                    is_dense=True,
                )
                writer.write(lid, t + 1_000_000, ts.serialize_cdr(msg, msg.__msgtype__))
            else:
                msg = types["sensor_msgs/msg/CompressedImage"](
                    header=header(t, "camera"), format="jpeg", data=jpegs[i % len(jpegs)]
                )
                writer.write(cam, t + 2_000_000, ts.serialize_cdr(msg, msg.__msgtype__))
    tmp.rename(path)


def ensure_log(seconds: float, storage: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"bench_{storage}_{int(seconds)}s"
    if not path.exists():
        print(f"writing {path.name} (cached for later runs) ...", file=sys.stderr, flush=True)
        _write_log(path, seconds, storage)
    return path


def log_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.suffix in (".mcap", ".db3"))


# --- the measured variants (each runs in a child process) ----------------------------------


def run_mcap_raw(path: Path) -> dict[str, float]:
    from mcap.reader import make_reader

    (file,) = path.glob("*.mcap")
    n = nbytes = frames = 0
    with file.open("rb") as f:
        for _schema, channel, message in make_reader(f).iter_messages():
            n += 1
            nbytes += len(message.data)
            frames += channel.topic == LIDAR
    return {"messages": n, "bytes": nbytes, "frames": frames}


def run_rosbags(path: Path) -> dict[str, float]:
    from rosbags.highlevel import AnyReader

    n = nbytes = frames = 0
    with AnyReader([path]) as reader:
        for conn, _t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            n += 1
            nbytes += len(raw)
            if conn.topic == LIDAR:
                frames += 1
                data = msg.data  # type: ignore[attr-defined]
                xyz = np.frombuffer(data, dtype=np.float32).reshape(-1, 6)[:, :3]
                xyz.sum()
    return {"messages": n, "bytes": nbytes, "frames": frames}


def run_bagscope(path: Path, *, decode_images: bool, touch: bool = True) -> dict[str, float]:
    import bagscope
    from bagscope.replay.sync import NearestSync

    n = frames = 0
    nbytes = 0
    with bagscope.open_log(path) as log:
        stream = log.frames(NearestSync(LIDAR, [CAMERA], slop=50_000_000))
        for frame in stream:
            frames += 1
            xyz = frame.clouds[LIDAR].xyz
            if touch:
                xyz.sum()
            if decode_images:
                frame.images[CAMERA].pixels.sum()
        n = sum(stream.stats.messages.values())
        nbytes = log_bytes(path)
    return {"messages": n, "bytes": nbytes, "frames": frames}


VARIANTS = {
    "a:mcap-raw": run_mcap_raw,
    "b:rosbags": run_rosbags,
    # c0 isolates bagscope's own cost: the (N, 3) xyz view is made but not reduced over.
    "c0:bagscope-view": lambda p: run_bagscope(p, decode_images=False, touch=False),
    "c:bagscope": lambda p: run_bagscope(p, decode_images=False),
    "d:bagscope+jpeg": lambda p: run_bagscope(p, decode_images=True),
}


PRELOAD = {
    "a:mcap-raw": ("mcap.reader",),
    "b:rosbags": ("rosbags.highlevel",),
    "c0:bagscope-view": ("bagscope.replay.log", "bagscope.replay.sync", "bagscope.replay.framing"),
    "c:bagscope": ("bagscope.replay.log", "bagscope.replay.sync", "bagscope.replay.framing"),
    "d:bagscope+jpeg": ("bagscope.replay.log", "bagscope.replay.sync", "bagscope.replay.framing"),
}


def child(variant: str, path: Path) -> None:
    import importlib

    # Importing a library is not work on the log: keep it out of the timed section.
    for module in PRELOAD[variant]:
        importlib.import_module(module)
    start = time.perf_counter()
    result = VARIANTS[variant](path)
    result["seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(variant: str, path: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", variant, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def bench(seconds: float) -> None:
    rows = []
    for storage in ("mcap", "sqlite3"):
        path = ensure_log(seconds, storage)
        size_mb = log_bytes(path) / 1e6
        for variant in VARIANTS:
            if variant.startswith("a:") and storage != "mcap":
                continue
            res = measure(variant, path)
            rows.append((storage, variant, size_mb, res))
    print(f"\n== log: {seconds:.0f} s of 64k-point lidar @10 Hz + 1080p JPEG @30 Hz ==")
    print(
        f"{'storage':8} {'variant':17} {'log MB':>8} {'s':>7} {'MB/s':>8} {'msgs/s':>8} "
        f"{'frames/s':>9} {'peak RSS MB':>12}"
    )
    speed: dict[tuple[str, str], float] = {}
    for storage, variant, size_mb, res in rows:
        mbps = size_mb / res["seconds"]
        speed[(storage, variant)] = mbps
        print(
            f"{storage:8} {variant:17} {size_mb:8.0f} {res['seconds']:7.2f} {mbps:8.0f} "
            f"{res['messages'] / res['seconds']:8.0f} {res['frames'] / res['seconds']:9.1f} "
            f"{res['peak_rss_mb']:12.0f}"
        )
    for storage in ("mcap", "sqlite3"):
        c = speed[(storage, "c:bagscope")]
        c0 = speed[(storage, "c0:bagscope-view")]
        parts = [f"c/b = {c / speed[(storage, 'b:rosbags')]:.2f}"]
        if (storage, "a:mcap-raw") in speed:
            parts.append(f"c0/a = {c0 / speed[(storage, 'a:mcap-raw')]:.2f}")
        if (storage, "a:mcap-raw") in speed:
            parts.insert(0, f"c/a = {c / speed[(storage, 'a:mcap-raw')]:.2f}")
        print(f"{storage}: " + ", ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="log length (≈1 GB at 30 s)")
    parser.add_argument("--scale", type=int, default=4, help="length factor of the long log")
    parser.add_argument("--skip-long", action="store_true", help="only the base length")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    bench(args.seconds)
    if not args.skip_long:
        bench(args.seconds * args.scale)


if __name__ == "__main__":
    main()
