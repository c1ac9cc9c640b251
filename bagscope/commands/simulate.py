"""``replay simulate``: write a simulated camera + lidar drive (with ground truth and faults)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bagscope.cli import bad_option, err, out, user_errors


def simulate(
    out_path: Annotated[
        Path,
        typer.Argument(
            help="Log to write (.mcap, .bag, or a db3 bag directory).",
            metavar="OUT",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="mcap | db3 | bag (default: from the suffix).", metavar="FORMAT"
        ),
    ] = None,
    duration: Annotated[str, typer.Option(help="Length of the drive.", metavar="DURATION")] = "20s",
    seed: Annotated[int, typer.Option(help="Everything random follows from it.", metavar="N")] = 0,
    scenario: Annotated[
        str, typer.Option(help="urban | highway | parking", metavar="NAME")
    ] = "urban",
    faults: Annotated[
        str | None,
        typer.Option(
            help='Faults to inject, e.g. "drop:/lidar/points=0.1,delay:/imu=20ms".',
            metavar="SPEC",
        ),
    ] = None,
    beams: Annotated[
        int | None, typer.Option(help="Lidar beams: 16, 32, 64 or 128.", metavar="N")
    ] = None,
    camera_size: Annotated[
        str | None,
        typer.Option(help="Camera resolution WIDTHxHEIGHT, e.g. 1280x720.", metavar="WxH"),
    ] = None,
    raw_images: Annotated[
        bool, typer.Option("--raw-images", help="Publish sensor_msgs/Image instead of JPEG.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Simulate a camera + lidar drive with ground truth (and faults) and write it as a bag."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from bagscope.replay.timeparse import format_duration, parse_duration

    with user_errors():
        from bagscope.sim.simulate import simulate as run_simulation
        from bagscope.sim.writer import format_for_path

        size = _parse_size(camera_size) if camera_size else None
        duration_ns = parse_duration(duration)
        chosen = fmt or format_for_path(out_path)
        columns = (
            TextColumn("[bold]simulating[/]"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("sim", total=duration_ns)
            result = run_simulation(
                out_path,
                fmt=chosen,
                scenario=scenario,
                duration_ns=duration_ns,
                seed=seed,
                faults=faults,
                camera_size=size,
                beams=beams,
                raw_images=raw_images,
                overwrite=overwrite,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        out.print(
            f"wrote [bold]{result.log_path}[/] ({format_duration(duration_ns)} of {scenario}, "
            f"{sum(result.message_counts.values())} messages) in {result.wall_s:.1f} s "
            f"= {result.realtime_factor:.2f}× real time; truth: {result.truth_path}"
        )


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        bad_option(f"--camera-size must look like 1280x720, not {text!r}")
        raise AssertionError from None  # pragma: no cover - bad_option raises
    if width <= 0 or height <= 0:
        bad_option(f"--camera-size must be positive, not {text!r}")
    return width, height
