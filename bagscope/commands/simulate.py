"""``replay simulate``: write a simulated camera + lidar drive (with ground truth and faults).

The choices and defaults shown in ``--help`` come from :mod:`bagscope.sim.choices`, the tuples
the simulator itself validates against, so the help cannot drift from what is accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bagscope.cli import bad_option, err, out, user_errors
from bagscope.sim.choices import (
    ALLOWED_BEAMS,
    DEFAULT_BEAMS,
    DEFAULT_CAMERA_SIZE,
    DEFAULT_DURATION_NS,
    DEFAULT_FORMAT,
    DEFAULT_SCENARIO,
    DEFAULT_SEED,
    FAULT_EXAMPLES,
    FAULT_KINDS,
    FAULT_MEANINGS,
    FORMATS,
    SCENARIOS,
    fault_syntax,
)

if TYPE_CHECKING:
    from bagscope.sim.errors import SimError
    from bagscope.sim.simulate import SimulationResult

# simulate()'s argument names as this command spells them, so an error can name the option.
_OPTIONS = {
    "out": "OUT",
    "fmt": "--format",
    "duration_ns": "--duration",
    "scenario": "--scenario",
    "faults": "--faults",
    "beams": "--beams",
    "camera_size": "--camera-size",
}
_DEFAULT_DURATION = f"{DEFAULT_DURATION_NS // 1_000_000_000}s"
_DEFAULT_SIZE = f"{DEFAULT_CAMERA_SIZE[0]}x{DEFAULT_CAMERA_SIZE[1]}"
# One line per kind: how it is spelled, what it does, and an item the default drive accepts.
_FAULT_LINES = "\n".join(
    f"- {fault_syntax(k)} — {FAULT_MEANINGS[k]}; e.g. {FAULT_EXAMPLES[k]}" for k in FAULT_KINDS
)


def simulate(
    out_path: Annotated[
        Path,
        typer.Argument(
            help="Log to write; the name is the path to open afterwards. A name ending in .mcap "
            "is one MCAP file, in .bag a ROS1 bag file; any other name (drive, drive.db3) is a "
            "rosbag2 directory of that name holding the storage file and metadata.yaml.",
            metavar="OUT",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help=f"Log format: {' | '.join(FORMATS)}.",
            metavar="FORMAT",
            show_default=f"from OUT: .bag is bag, .db3 is db3, any other name {DEFAULT_FORMAT}",
        ),
    ] = None,
    duration: Annotated[
        str, typer.Option(help="Length of the drive (e.g. 500ms, 20s, 2m).", metavar="DURATION")
    ] = _DEFAULT_DURATION,
    seed: Annotated[
        int, typer.Option(help="Everything random follows from it.", metavar="N")
    ] = DEFAULT_SEED,
    scenario: Annotated[
        str, typer.Option(help=f"The scene: {' | '.join(SCENARIOS)}.", metavar="NAME")
    ] = DEFAULT_SCENARIO,
    faults: Annotated[
        str | None,
        typer.Option(
            help="Faults to inject: comma-separated items of the kinds listed above, e.g. "
            "drop:/imu=0.1,stale_tf:2s+1s",
            metavar="SPEC",
            show_default="none",
        ),
    ] = None,
    beams: Annotated[
        int,
        typer.Option(help=f"Lidar beams: {', '.join(str(b) for b in ALLOWED_BEAMS)}.", metavar="N"),
    ] = DEFAULT_BEAMS,
    camera_size: Annotated[
        str, typer.Option(help="Camera resolution WIDTHxHEIGHT, e.g. 1280x720.", metavar="WxH")
    ] = _DEFAULT_SIZE,
    raw_images: Annotated[
        bool,
        typer.Option(
            "--raw-images",
            help="Publish raw sensor_msgs/Image instead of JPEG sensor_msgs/CompressedImage.",
            show_default="off: JPEG",
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace OUT and its truth sidecar if they exist.")
    ] = False,
) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from bagscope.replay.timeparse import format_duration

    with user_errors():
        from bagscope.sim.errors import SimError
        from bagscope.sim.simulate import simulate as run_simulation

        size = _parse_size(camera_size)
        duration_ns = _parse_duration(duration)
        columns = (
            TextColumn("[bold]simulating[/]"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("sim", total=duration_ns)
            try:
                result = run_simulation(
                    out_path,
                    fmt=fmt,
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
            except SimError as exc:
                raise _in_option_words(exc) from None
        out.print(
            f"wrote {_what(result)}: {format_duration(duration_ns)} of {scenario}, "
            f"{sum(result.message_counts.values())} messages in {result.wall_s:.1f} s "
            f"= {result.realtime_factor:.2f}× real time; truth: {_markup(result.truth_path)}"
        )


simulate.__doc__ = f"""Simulate a camera + lidar drive with ground truth (and faults) and write
it as a bag.

Beside OUT, OUT.truth.json describes the scenario and every injected fault.

Fault kinds for --faults (comma-separated; P is a probability from 0 to 1, START+LENGTH a
window from the drive's start; times take ns/us/ms/s/m units, m being minutes, but a
pose_jump DISTANCE is in metres, e.g. 6m):

{_FAULT_LINES}
"""


def _markup(path: Path) -> str:
    from rich.markup import escape

    return escape(str(path))


def _what(result: SimulationResult) -> str:
    """The path to open and what it is: a bare name may have become a directory."""
    if result.log_path.is_dir():
        kind = f"rosbag2 directory, {result.fmt} storage"
    else:
        kind = f"{result.fmt} file"
    return f"[bold]{_markup(result.log_path)}[/] ({kind})"


def _in_option_words(exc: SimError) -> SimError:
    """``exc`` naming the option at fault as this command spells it, not as Python does."""
    from bagscope.sim.errors import OutputExistsError, SimError

    if isinstance(exc, OutputExistsError):
        return SimError(f"{exc.path} exists already; pass --overwrite to replace it")
    option = _OPTIONS.get(exc.parameter or "")
    return exc if option is None else SimError(f"{option}: {exc}", parameter=exc.parameter)


def _parse_duration(text: str) -> int:
    from bagscope.replay.errors import DurationError
    from bagscope.replay.timeparse import parse_duration

    try:
        duration_ns = parse_duration(text)
    except DurationError as exc:
        bad_option(f"--duration: {exc}")
        raise AssertionError from None  # pragma: no cover - bad_option raises
    if duration_ns <= 0:
        bad_option(f"--duration must be positive, not {text!r}")
    return duration_ns


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        bad_option(f"--camera-size must look like 1280x720, not {text!r}")
        raise AssertionError from None  # pragma: no cover - bad_option raises
    if width <= 0 or height <= 0:
        bad_option(f"--camera-size must be positive, not {text!r}")
    return width, height
