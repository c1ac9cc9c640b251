"""Simulator speed: is a drive written faster than real time?

Simulates the default drive (urban, 64 beams, default camera at 30 Hz) and the same with
640x360 and 1280x720 cameras, each in its own process so the peak RSS reported is that run's own,
and prints sim-time / wall-time (>= 1.0 means faster than real time), camera frames and lidar
sweeps per second, MB/s written and peak RSS. ``cpu/sim`` is CPU seconds (this process and its
workers) per simulated second: on an otherwise idle machine the drive keeps up with real time when
it is below the number of cores, so it tells how much headroom there is even when other work shares
the machine and inflates the wall time. The load average at the start is printed for the same
reason.

    python bench/simulate.py [--duration 20] [--format mcap] [--workers 2] [--only default]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIGS: dict[str, tuple[int, int] | None] = {
    "default": None,
    "640x360": (640, 360),
    "1280x720": (1280, 720),
}
SUFFIX = {"mcap": ".mcap", "bag": ".bag", "db3": ""}


def _one(args: argparse.Namespace) -> None:
    """Child process: run one simulation, print its numbers as JSON."""
    from bagscope.sim.simulate import simulate

    size = CONFIGS[args.config]
    before = resource.getrusage(resource.RUSAGE_SELF)  # imports are not the drive's cost
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"drive{SUFFIX[args.format]}"
        result = simulate(
            out,
            fmt=args.format,
            duration_ns=round(args.duration * 1e9),
            camera_size=size,
            workers=args.workers,
        )
    counts = result.message_counts
    frames = counts.get("/camera/image/compressed", 0)
    me = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = me.ru_utime + me.ru_stime + workers.ru_utime + workers.ru_stime
    cpu_s -= before.ru_utime + before.ru_stime
    peak_kib = max(me.ru_maxrss, workers.ru_maxrss)
    print(
        json.dumps(
            {
                "realtime": result.realtime_factor,
                "cpu_per_sim": cpu_s / result.sim_s,
                "wall_s": result.wall_s,
                "frames_per_s": frames / result.wall_s,
                "sweeps_per_s": counts.get("/lidar/points", 0) / result.wall_s,
                "mb_per_s": result.bytes_written / 1e6 / result.wall_s,
                "mb": result.bytes_written / 1e6,
                "peak_rss_mb": peak_kib / 1024,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of drive")
    parser.add_argument("--format", choices=sorted(SUFFIX), default="mcap")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=sorted(CONFIGS), help="run one camera config")
    parser.add_argument("--config", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.config is not None:
        _one(args)
        return
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{args.duration:g} s urban drive, 64 beams, camera 30 Hz, {args.format}")
    print(f"{os.cpu_count()} CPUs, load average {load}, {args.workers} workers")
    header = (
        f"{'camera':<16}{'sim/wall':>9}{'wall s':>8}{'cpu/sim':>9}{'frames/s':>10}{'sweeps/s':>10}"
    )
    header += f"{'MB/s':>8}{'MB':>8}{'peak RSS MB':>13}"
    print(header)
    for name in [args.only] if args.only else list(CONFIGS):
        child = [sys.executable, __file__, "--config", name]
        child += ["--duration", str(args.duration), "--format", args.format]
        child += ["--workers", str(args.workers)]
        done = subprocess.run(child, capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{name:<16}{r['realtime']:>9.2f}{r['wall_s']:>8.1f}{r['cpu_per_sim']:>9.2f}"
            f"{r['frames_per_s']:>10.1f}"
            f"{r['sweeps_per_s']:>10.1f}{r['mb_per_s']:>8.1f}{r['mb']:>8.0f}"
            f"{r['peak_rss_mb']:>13.0f}"
        )


if __name__ == "__main__":
    main()
