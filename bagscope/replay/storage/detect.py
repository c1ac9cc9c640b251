"""Which backend reads a path: decided by magic bytes, never by the extension alone."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from bagscope.replay.errors import LogOpenError

Kind = Literal["rosbag1", "mcap", "sqlite3", "rosbag2"]

_MAGICS: tuple[tuple[bytes, Kind], ...] = (
    (b"#ROSBAG V2.0\n", "rosbag1"),
    (b"\x89MCAP0\r\n", "mcap"),
    (b"SQLite format 3\x00", "sqlite3"),
)
_HINT = "expected a ROS1 .bag, an .mcap file, a ROS2 bag directory or a .db3"


def file_kind(path: Path) -> Kind | None:
    """The format announced by a file's first bytes, or None."""
    with path.open("rb") as file:
        head = file.read(16)
    for magic, kind in _MAGICS:
        if head.startswith(magic):
            return kind
    return None


def detect(path: Path) -> list[tuple[Kind, Path]]:
    """What to open for one user-given path (a directory may hold several files)."""
    path = Path(path)
    if not path.exists():
        msg = f"{path}: no such file or directory"
        raise LogOpenError(msg)
    if path.name == "metadata.yaml" and path.is_file():
        path = path.parent
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return [("rosbag2", path)]
        found = [
            (kind, child)
            for child in sorted(path.iterdir())
            if child.is_file() and child.stat().st_size and (kind := file_kind(child))
        ]
        if not found:
            msg = f"{path}: directory holds no log ({_HINT})"
            raise LogOpenError(msg)
        return found
    try:
        if path.stat().st_size == 0:
            msg = f"{path}: empty file, not a log"
            raise LogOpenError(msg)
        kind = file_kind(path)
    except OSError as err:
        msg = f"{path}: cannot read ({err.strerror})"
        raise LogOpenError(msg) from err
    if kind is None:
        msg = f"{path}: not a recognised log ({_HINT})"
        raise LogOpenError(msg)
    return [(kind, path)]
