"""The simulated drives the benchmarks share, written once and cached in bench/.cache."""

from __future__ import annotations

from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"


def drive(seconds: int) -> Path:
    """A default urban drive (64-beam lidar, 480x270 camera) of ``seconds``, seed 0."""
    from bagscope.sim.simulate import simulate

    path = CACHE / f"pipeline_urban_{seconds}s.mcap"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        print(f"simulating {seconds} s drive -> {path} (once)", flush=True)
        simulate(path, duration_ns=seconds * 1_000_000_000, seed=0, scenario="urban")
    return path
