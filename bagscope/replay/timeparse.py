"""Durations and time points typed by people, turned into integer nanoseconds.

Users write ``50ms``, ``1.5s``, ``2m`` or a bare number of seconds; logs stamp time in ns since the
epoch. Keeping the parsing in one place means the CLI, pipeline files and the simulator's fault
grammar all accept the same spellings.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from bagscope.replay.errors import DurationError, WindowError

_UNITS_NS = {
    "ns": Decimal(1),
    "us": Decimal(1_000),
    "µs": Decimal(1_000),
    "ms": Decimal(1_000_000),
    "s": Decimal(1_000_000_000),
    "m": Decimal(60_000_000_000),
    "min": Decimal(60_000_000_000),
    "h": Decimal(3_600_000_000_000),
}
_DURATION = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([a-zµ]*)\s*$")

# A time point this far from zero is an absolute epoch time, not an offset into the log.
_EPOCH_THRESHOLD_NS = 100_000_000 * 1_000_000_000  # 1e8 s ≈ 3 years after 1970


def parse_duration(text: str, *, default_unit: str = "s") -> int:
    """Parse ``"50ms"``, ``"1.5s"``, ``"-80ms"`` or ``"2"`` (in ``default_unit``) to ns."""
    match = _DURATION.match(text)
    if not match:
        msg = f"cannot read {text!r} as a duration: write e.g. 50ms, 1.5s, 2m"
        raise DurationError(msg)
    number, unit = match.groups()
    unit = unit or default_unit
    if unit not in _UNITS_NS:
        msg = f"unknown unit {unit!r} in {text!r}: use one of {', '.join(_UNITS_NS)}"
        raise DurationError(msg)
    try:
        value = Decimal(number) * _UNITS_NS[unit]
    except InvalidOperation as err:  # pragma: no cover - the regex admits only numbers
        msg = f"cannot read {text!r} as a duration"
        raise DurationError(msg) from err
    return int(value.to_integral_value())


def parse_time_point(text: str, *, log_start_ns: int) -> int:
    """Resolve ``--start``/``--end``: an offset from the log start, or an absolute epoch time.

    A bare number large enough to be seconds since the epoch (``1586406456.8``) is absolute;
    anything else (``5``, ``5s``, ``1.5m``) counts from the first message of the log.
    """
    value = parse_duration(text)
    if abs(value) >= _EPOCH_THRESHOLD_NS:
        return value
    return log_start_ns + value


def _fixed(ns: int, unit_ns: int, decimals: int) -> str:
    """``ns / unit_ns`` rounded half up to ``decimals`` places, with integers only."""
    scale = 10**decimals
    value = (ns * scale * 2 + unit_ns) // (unit_ns * 2)  # round half up
    whole, frac = divmod(value, scale)
    return f"{whole}.{frac:0{decimals}d}" if decimals else str(whole)


def format_seconds(ns: int, decimals: int = 3) -> str:
    """Nanoseconds as seconds with ``decimals`` places (``0.151``), exactly, no float."""
    sign = "-" if ns < 0 else ""
    return sign + _fixed(abs(ns), 1_000_000_000, decimals)


def format_duration(ns: int) -> str:
    """Render a duration for people: ``850.0 ms``, ``12.345 s``, ``3 min 05.2 s``."""
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns} ns"
    if ns < 999_950:
        return f"{sign}{_fixed(ns, 1_000, 1)} µs"
    if ns < 999_950_000:
        return f"{sign}{_fixed(ns, 1_000_000, 1)} ms"
    if ns < 59_999_500_000:
        return f"{sign}{_fixed(ns, 1_000_000_000, 3)} s"
    tenths = (ns + 50_000_000) // 100_000_000
    minutes, rest = divmod(tenths, 600)
    return f"{sign}{minutes} min {rest // 10:02d}.{rest % 10} s"


def format_epoch(ns: int) -> str:
    """Seconds since the epoch with all nine decimals, exactly: ``1586406456.763032325``."""
    sign = "-" if ns < 0 else ""
    sec, frac = divmod(abs(ns), 1_000_000_000)
    return f"{sign}{sec}.{frac:09d}"


def format_clock(ns: int) -> str:
    """UTC wall-clock time to the millisecond (truncated, never rounded up a second)."""
    sec, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(sec, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp}.{frac // 1_000_000:03d}Z"


def resolve_window(
    start: str | None, end: str | None, *, log_start_ns: int, log_end_ns: int
) -> tuple[int | None, int | None]:
    """``--start``/``--end`` as absolute ns, refusing windows that cannot hold a message.

    A negative offset, a start after the end, or a window entirely outside the log is an
    error that names the log's extent, rather than an empty replay that looks like a bug.
    """
    extent = (
        f"the log runs from 0 s to {format_duration(log_end_ns - log_start_ns)} "
        f"({format_epoch(log_start_ns)} .. {format_epoch(log_end_ns)})"
    )
    t0 = t1 = None
    if start is not None:
        if parse_duration(start) < 0:
            msg = f"--start {start} is negative; {extent}"
            raise WindowError(msg)
        t0 = parse_time_point(start, log_start_ns=log_start_ns)
    if end is not None:
        if parse_duration(end) < 0:
            msg = f"--end {end} is negative; {extent}"
            raise WindowError(msg)
        t1 = parse_time_point(end, log_start_ns=log_start_ns)
    if t0 is not None and t1 is not None and t0 >= t1:
        msg = f"--start {start} is not before --end {end}; {extent}"
        raise WindowError(msg)
    if t0 is not None and t0 > log_end_ns:
        msg = f"--start {start} is after the log ends; {extent}"
        raise WindowError(msg)
    if t1 is not None and t1 <= log_start_ns:
        msg = f"--end {end} is before the log starts; {extent}"
        raise WindowError(msg)
    return t0, t1
