"""The ``replay`` command line: the typer app, shared options and error handling, and the
registration of commands; each command's parsing and printing lives in :mod:`bagscope.commands`.

The CLI parses and prints; the work lives in the package. Heavy modules (numpy, the readers,
open3d) are imported inside the commands, so ``replay --help`` answers instantly and each
command pays only for what it uses.
"""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup
from typer.exceptions import TyperException

from bagscope import __version__

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bagscope.replay.log import Log

USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130
READING = "Reading"
SYNC = "Sync"
WINDOW = "Window"
# Piped output (files, CI logs) gets a wide console so tables keep their full topic names.
_PIPE_WIDTH = 160

out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else _PIPE_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _ReplayGroup(TyperGroup):
    """The ``replay`` group: a usage mistake (missing option, bad value) is one red line too.

    click/typer print usage errors as a multi-line box; our rule for every user mistake is one
    line and exit 2, so the group runs its commands in non-standalone mode and reports here.
    """

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            kwargs["standalone_mode"] = False
            result = super().main(*args, **kwargs)
        except TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `replay`: the help is the answer
                exc.show()  # type: ignore[attr-defined]
                result = USER_ERROR_EXIT
            else:
                err.print(f"[red]error:[/] {_usage_line(exc)}")
                result = getattr(exc, "exit_code", USER_ERROR_EXIT)
        except typer.Abort:
            result = INTERRUPTED_EXIT
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


def _usage_line(exc: TyperException) -> str:
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"{message.rstrip('.')}{hint}"


app = typer.Typer(
    cls=_ReplayGroup,
    name="replay",
    help="Replay robot sensor logs (ROS1 .bag, ROS2 .db3/.mcap) as synced camera + lidar frames.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="markdown",
)


def _show_version(value: bool) -> None:
    if value:
        out.print(f"bagscope {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_show_version
        ),
    ] = False,
) -> None:
    """Replay robot sensor logs (ROS1 .bag, ROS2 .db3/.mcap) as synced camera + lidar frames."""


# -- options several commands share --------------------------------------------------------
LogPaths = Annotated[
    list[Path],
    typer.Argument(
        help="Log file(s): .bag, .mcap, .db3 or a ROS2 bag directory; several are read as one.",
        metavar="LOG...",
        show_default=False,
    ),
]
TypestoreOpt = Annotated[
    str | None,
    typer.Option(
        "--typestore",
        help="Fallback message definitions: humble, jazzy, iron, foxy, noetic, ...",
        metavar="NAME",
        rich_help_panel=READING,
    ),
]
MsgPathOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--msg-path",
        help="Directory of custom .msg/.idl definitions (repeatable).",
        metavar="DIR",
        rich_help_panel=READING,
    ),
]
StartOpt = Annotated[
    str | None,
    typer.Option(
        help="Offset from the log start (5, 5s, 1.5m) or an absolute epoch time in s.",
        metavar="TIME",
        rich_help_panel=WINDOW,
    ),
]
EndOpt = Annotated[
    str | None,
    typer.Option(
        help="Offset from the log start or an absolute epoch time (exclusive).",
        metavar="TIME",
        rich_help_panel=WINDOW,
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict", help="Fail on cut-off logs and corrupt messages.", rich_help_panel=READING
    ),
]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user's mistake into one red line and exit code 2; keep tracebacks for our bugs.

    Warnings (a recovered log, say) print as one yellow line each.
    """
    from rich.markup import escape

    from bagscope.errors import BagscopeError

    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        err.print(f"[yellow]warning:[/] {escape(str(message))}")

    previous = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    except BagscopeError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(USER_ERROR_EXIT) from None
    finally:
        warnings.showwarning = previous


def open_logs(
    paths: list[Path], typestore: str | None, msg_paths: list[Path] | None, *, strict: bool
) -> Log:
    """The `Log` the shared reading options describe."""
    from bagscope.replay.log import open_log

    return open_log(paths, typestore=typestore, msg_paths=msg_paths or (), strict=strict)


def bad_option(message: str) -> None:
    """Refuse an option value in the user's words (raises a user error)."""
    from bagscope.errors import BagscopeError

    raise BagscopeError(message)


# -- commands: one module each ---------------------------------------------------------------
from bagscope.commands import (  # noqa: E402  (they use the names above)
    analyze,
    batch,
    clip,
    compare,
    convert,
    export,
    frames,
    info,
    plot,
    render,
    run,
    score,
    simulate,
    view,
)

app.command("info")(info.info)
app.command("frames")(frames.frames)
app.command("simulate")(simulate.simulate)
app.command("analyze")(analyze.analyze)
app.command("run")(run.run)
app.command("score")(score.score)
app.command("plot")(plot.plot)
app.command("render")(render.render)
app.command("view")(view.view)
app.command("compare")(compare.compare)
app.command("clip")(clip.clip)
app.command("convert")(convert.convert)
app.command("batch")(batch.batch)
app.command("export")(export.export)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
