"""Replay throughput and memory: bagscope against the libraries underneath it, in one run.

Writes (once, cached in bench/.cache) an MCAP log of a 64k-point lidar (x, y, z, intensity:
1 MB a sweep) at 10 Hz and a 720p JPEG camera (~145 KB a frame) at 30 Hz, by default 240 s
(~3.5 GB), then measures side by side on the same file in the same run, each variant as a
*whole process* (start-up and imports included, best of --repeat, page cache warm):

  mcap      the `mcap` library's bare iteration over every message (no decoding)
  rosbags   rosbags AnyReader + deserialize of every message
  frames    `replay frames LOG --sync /lidar/points,/camera/image/compressed --policy nearest
            --slop 50ms`, the whole CLI process (every sweep checked, every image's structure
            checked, frames built; pixels not decoded)

and reports frames' speed as a multiple of each baseline (targets: >= 1.0x mcap, >= 2.0x
rosbags). Then, in-process (imports excluded), the Python API variants with peak RSS on a
shorter and the full log, to show memory stays flat as logs grow:

  api        log.frames(NearestSync) touching each sweep's xyz view (not reducing it)
  api+xyz    the same, summing every sweep's xyz (numpy work on 1 MB a frame)
  api+jpeg   the same, decoding every synced image's pixels

    python bench/replay_throughput.py [--seconds 240] [--short 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import compileall
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"
LIDAR = "/lidar/points"
CAMERA = "/camera/image/compressed"
POINTS = 65_536
REPLAY = [sys.executable, "-m", "bagscope"]


def _write_log(path: Path, seconds: float) -> None:
    import simplejpeg
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    types = ts.types
    rng = np.random.default_rng(0)
    clouds = [
        np.frombuffer((rng.normal(size=(POINTS, 4)) * 20).astype(np.float32).tobytes(), np.uint8)
        for _ in range(4)
    ]
    yy, xx = np.mgrid[0:720, 0:1280]
    jpegs = []
    for k in range(8):
        img = np.stack(
            [(xx + 9 * k) % 256, (yy + 5 * k) % 256, ((xx ^ yy) + k) % 256], axis=-1
        ).astype(np.uint8)
        img += rng.integers(0, 2, size=img.shape, dtype=np.uint8)  # mild sensor-like noise
        jpegs.append(np.frombuffer(simplejpeg.encode_jpeg(img, quality=80), dtype=np.uint8))
    fields = [
        types["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1)
        for i, n in enumerate(("x", "y", "z", "intensity"))
    ]

    def header(t: int, frame: str) -> object:
        stamp = types["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9)
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)

    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = 1_700_000_000 * 10**9
    with Writer(tmp, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
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
                    point_step=16,
                    row_step=16 * POINTS,
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


def ensure_log(seconds: float) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"camera_lidar_{int(seconds)}s"
    if not path.exists():
        print(f"writing {path.name} (cached for later runs) ...", file=sys.stderr, flush=True)
        _write_log(path, seconds)
    return path


def log_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.suffix == ".mcap")


def warm(path: Path) -> None:
    """Read the file once so every variant starts with it in the page cache."""
    for file in path.glob("*.mcap"):
        with file.open("rb") as stream:
            while stream.read(64 << 20):
                pass


# --- whole processes ------------------------------------------------------------------------

MCAP_SCRIPT = """
import sys
from mcap.reader import make_reader
n = 0
with open(sys.argv[1], "rb") as f:
    for _schema, _channel, message in make_reader(f).iter_messages():
        n += len(message.data) > 0
print(n)
"""

ROSBAGS_SCRIPT = """
import sys
from rosbags.highlevel import AnyReader
n = 0
with AnyReader([__import__("pathlib").Path(sys.argv[1])]) as reader:
    for conn, _t, raw in reader.messages():
        reader.deserialize(raw, conn.msgtype)
        n += 1
print(n)
"""


def whole_process_commands(path: Path) -> dict[str, list[str]]:
    (mcap_file,) = path.glob("*.mcap")
    return {
        "mcap": [sys.executable, "-c", MCAP_SCRIPT, str(mcap_file)],
        "rosbags": [sys.executable, "-c", ROSBAGS_SCRIPT, str(path)],
        "frames": [
            *REPLAY,
            "frames",
            str(path),
            "--sync",
            f"{LIDAR},{CAMERA}",
            "--policy",
            "nearest",
            "--slop",
            "50ms",
            "--json",
        ],
    }


def run_whole(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024, proc.stdout


def whole(path: Path, repeat: int) -> None:
    size_mb = log_bytes(path) / 1e6
    commands = whole_process_commands(path)
    best: dict[str, float] = {}
    outputs: dict[str, str] = {}
    # Interleaved rounds, so a slow moment of the machine hits every variant alike.
    for _ in range(repeat):
        for name, command in commands.items():
            wall, _, stdout = run_whole(command)
            best[name] = min(best.get(name, wall), wall)
            outputs[name] = stdout
    summary = json.loads(outputs["frames"])
    frames = summary["frames"]
    messages = int(outputs["mcap"])
    print(
        f"\n== whole processes, best of {repeat}: {path.name}, {size_mb:.0f} MB, "
        f"{messages} messages, {frames} frames =="
    )
    print(f"{'variant':10} {'s':>7} {'MB/s':>8} {'msgs/s':>9} {'frames/s':>9}")
    for name, wall in best.items():
        fps = f"{frames / wall:9.0f}" if name == "frames" else f"{'-':>9}"
        print(f"{name:10} {wall:7.2f} {size_mb / wall:8.0f} {messages / wall:9.0f} {fps}")
    print(
        f"frames vs mcap bare iteration: {best['mcap'] / best['frames']:.2f}x (target >= 1.0); "
        f"vs rosbags deserialize: {best['rosbags'] / best['frames']:.2f}x (target >= 2.0)"
    )


# --- in-process API variants (each in its own child for its own peak RSS) -------------------


def run_api(path: Path, *, decode_images: bool, reduce: bool) -> dict[str, float]:
    import bagscope

    frames = 0
    with bagscope.open_log(path) as log:
        stream = log.frames(bagscope.NearestSync(LIDAR, [CAMERA], slop=50_000_000))
        for frame in stream:
            frames += 1
            xyz = frame.clouds[LIDAR].xyz
            if reduce:
                xyz.sum()
            if decode_images:
                frame.images[CAMERA].pixels.sum()
        messages = sum(stream.stats.messages.values())
    return {"messages": messages, "frames": frames}


API = {
    "api": {"decode_images": False, "reduce": False},
    "api+xyz": {"decode_images": False, "reduce": True},
    "api+jpeg": {"decode_images": True, "reduce": False},
}


def child(variant: str, path: Path) -> None:
    import bagscope.replay.framing  # imports are not work on the log  # noqa: F401

    start = time.perf_counter()
    result: dict[str, float] = dict(run_api(path, **API[variant]))
    result["seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def in_process(paths: list[Path]) -> None:
    print("\n== in-process API (imports excluded), peak RSS per child ==")
    print(f"{'log':22} {'variant':9} {'MB':>6} {'s':>7} {'MB/s':>7} {'frames/s':>9} {'RSS MB':>7}")
    for path in paths:
        size_mb = log_bytes(path) / 1e6
        for variant in API:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", variant, str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"{path.name:22} {variant:9} {size_mb:6.0f} {res['seconds']:7.2f} "
                f"{size_mb / res['seconds']:7.0f} {res['frames'] / res['seconds']:9.0f} "
                f"{res['peak_rss_mb']:7.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=240.0, help="log length (~3.5 GB)")
    parser.add_argument("--short", type=float, default=60.0, help="shorter log for the RSS check")
    parser.add_argument("--repeat", type=int, default=3, help="whole-process rounds")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    # Byte-compile bagscope as an installed wheel would be: with PYTHONDONTWRITEBYTECODE set
    # (as on some CI machines) an editable install recompiles every module on every start.
    compileall.compile_dir(Path(__file__).resolve().parents[1] / "bagscope", quiet=1)
    path = ensure_log(args.seconds)
    short = ensure_log(args.short)
    warm(path)
    whole(path, args.repeat)
    warm(short)
    in_process([short, path])


if __name__ == "__main__":
    main()
