"""``replay render --view grid`` throughput and the 3D view's per-frame cost.

Targets: >= 10 output frames/s at 1280x720 and <= 50 ms to update + render one frame of a
130k-point cloud. On a machine without a GPU Open3D renders through lavapipe (CPU Vulkan),
whose fixed cost per frame alone is far above 50 ms: the numbers say so plainly.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._drives import drive

FPS_TARGET = 10.0
UPDATE_TARGET_MS = 50.0
SECONDS = 10


def grid_throughput(path: Path) -> tuple[int, float]:
    """Frames and wall seconds for the first SECONDS s of the drive as a 1280x720 grid MP4."""
    from bagscope.commands.render import render_log
    from bagscope.replay.log import open_log
    from bagscope.viz.view import ViewSpec

    with tempfile.TemporaryDirectory() as tmp, open_log([path]) as log:
        start = log.info().start_ns
        t0 = time.perf_counter()
        count = render_log(
            log,
            out=Path(tmp) / "grid.mp4",
            spec=ViewSpec(view="grid", size=(1280, 720)),
            fps=10.0,
            start_ns=start,
            end_ns=start + SECONDS * 1_000_000_000,
        )
        return count, time.perf_counter() - t0


def update_ms(points: int = 130_000, repeats: int = 10) -> float:
    """Median ms to replace a 130k-point cloud and render it at 1280x720 (chase preset)."""
    from bagscope.viz.render import SceneRenderer
    from bagscope.viz.scene import colormap
    from bagscope.viz.view import PointLayer, Scene

    rng = np.random.default_rng(0)
    renderer = SceneRenderer(size=(1280, 720))
    times = []
    for _ in range(repeats + 1):
        xyz = rng.uniform(-50, 50, (points, 3)).astype(np.float32)
        xyz[:, 2] *= 0.05
        layer = PointLayer(name="/lidar", xyz=xyz, colors=colormap(xyz[:, 2], lo=-2.5, hi=2.5))
        scene = Scene(t_ns=0, index=0, frame_id="odom", ego=np.eye(4), points=(layer,))
        t0 = time.perf_counter()
        renderer.render(scene, preset="chase")
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times[1:]))


def main() -> None:
    path = drive(60)
    count, wall = grid_throughput(path)
    rate = count / wall
    ms = update_ms()
    print(
        f"render --view grid 1280x720, first {SECONDS} s of a 60 s drive: {count} frames "
        f"in {wall:.1f} s = {rate:.2f} frames/s (target >= {FPS_TARGET:g})"
    )
    print(
        f"3D view update + render, 130k points, 1280x720: {ms:.0f} ms (target <= "
        f"{UPDATE_TARGET_MS:g})"
    )
    for ok, what in ((rate >= FPS_TARGET, "frames/s"), (ms <= UPDATE_TARGET_MS, "update time")):
        if not ok:
            print(f"NOT MET: {what} target, on this CPU renderer (Open3D/Filament on lavapipe)")


if __name__ == "__main__":
    main()
