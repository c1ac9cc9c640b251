"""The pipeline's speed: the runner's overhead, the default analysis, health-only analysis.

On simulated drives (written once, cached in bench/.cache; the simulator's defaults: 64-beam
lidar at 10 Hz, a 480x270 JPEG camera at 30 Hz, IMU, odometry, TF, ground truth):

  overhead   bare ``log.frames(nearest lidar+camera)`` vs ``run_stages(log, [], sync=same)``
             on the 60 s drive, same run, best of --repeat (target: within 10 %)
  default    every analyzer of ``replay analyze`` (auto sync) on the 60 s drive: frames/s,
             multiple of real time, and each stage's share of the wall time
  health     ``--only health`` (stamps and bytes, no point or pixel decoding) on the 20 s demo
             drive: multiple of real time (target >= 50x)

Figures and the report are not drawn (they cost the same whatever the log's length).

    python bench/pipeline.py [--seconds 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _drives import drive

LIDAR = "/lidar/points"
CAMERA = "/camera/image/compressed"


def best(fn: Any, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def stages_for(names: Any) -> list[Any]:
    from bagscope.builtins import BUILTIN_STAGES
    from bagscope.pipeline.config import PipelineConfig, build_stages

    stages = build_stages(PipelineConfig(), builtins=BUILTIN_STAGES, defaults=list(names))
    stages.sort(key=lambda s: s.name == "stage_timing")
    return stages


def overhead(path: Path, repeat: int) -> None:
    from bagscope.pipeline.runner import run_stages
    from bagscope.replay.log import open_log
    from bagscope.replay.sync import make_policy

    def bare() -> int:
        with open_log(path) as log:
            policy = make_policy("nearest", [LIDAR, CAMERA], slop_ns=50_000_000)
            return sum(1 for _ in log.frames(policy))

    def runner() -> int:
        with open_log(path) as log:
            policy = make_policy("nearest", [LIDAR, CAMERA], slop_ns=50_000_000)
            return run_stages(log, [], sync=policy).frames

    t_bare, n_bare = best(bare, repeat)
    t_run, n_run = best(runner, repeat)
    assert n_bare == n_run, (n_bare, n_run)
    print(f"{'variant':<28}{'frames':>8}{'s':>8}{'frames/s':>10}")
    print(f"{'bare log.frames()':<28}{n_bare:>8}{t_bare:>8.3f}{n_bare / t_bare:>10.0f}")
    print(f"{'run_stages(no stages)':<28}{n_run:>8}{t_run:>8.3f}{n_run / t_run:>10.0f}")
    print(f"runner overhead: {100 * (t_run / t_bare - 1):+.1f} % (target within 10 %)")


def analysis(path: Path, *, names: Any, label: str, repeat: int) -> None:
    from bagscope.pipeline.runner import run_stages
    from bagscope.pipeline.session import auto_sync, sync_policy
    from bagscope.replay.log import open_log

    def once() -> Any:
        with open_log(path) as log:
            policy = sync_policy(log, auto_sync(log))
            t0 = time.perf_counter()
            result = run_stages(log, stages_for(names), sync=policy)
            return result, time.perf_counter() - t0, log.info().duration_ns / 1e9

    wall, (result, _, duration_s) = best(once, repeat)
    print(
        f"{label}: {duration_s:.1f} s of log, {result.frames} frames, {result.messages} messages "
        f"in {wall:.3f} s = {result.frames / wall:.1f} frames/s, "
        f"{duration_s / wall:.1f}x real time"
    )
    timings = result.timings
    print(f"  {'stage':<14}{'messages ms':>12}{'frames ms':>11}{'finish ms':>11}{'share':>8}")
    for name in result.stages:
        msg = timings.messages.get(name, 0) / 1e6
        frm = sum(timings.frames.get(name, ())) / 1e6
        fin = timings.finish.get(name, 0) / 1e6
        share = (msg + frm + fin) / 1e3 / wall
        print(f"  {name:<14}{msg:>12.1f}{frm:>11.1f}{fin:>11.1f}{share:>7.1%}")
    print("  (the rest: reading, sync and framing)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from bagscope.analyzers import DEFAULT_ANALYSIS, HEALTH

    long_drive, demo_drive = drive(args.seconds), drive(20)
    print(f"== runner overhead on the {args.seconds} s drive ==")
    overhead(long_drive, args.repeat)
    print(f"\n== default analysis on the {args.seconds} s drive ==")
    analysis(long_drive, names=DEFAULT_ANALYSIS, label="default", repeat=args.repeat)
    print("\n== health-only analysis on the 20 s demo drive ==")
    analysis(demo_drive, names=HEALTH, label="health", repeat=args.repeat)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
