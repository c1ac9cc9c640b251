"""Durations and time points typed by people, turned into integer nanoseconds.

Users write ``50ms``, ``1.5s``, ``2m`` or a bare number of seconds; logs stamp time in ns since the
epoch. Keeping the parsing in one place means the CLI, pipeline files and the simulator's fault
grammar all accept the same spellings.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from bagscope.replay.errors import DurationError

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


def format_duration(ns: int) -> str:
    """Render a duration for people: ``850.0 ms``, ``12.345 s``, ``3 min 05.2 s``."""
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns} ns"
    if ns < 1_000_000:
        return f"{sign}{ns / 1e3:.1f} µs"
    if ns < 1_000_000_000:
        return f"{sign}{ns / 1e6:.1f} ms"
    if ns < 60_000_000_000:
        return f"{sign}{ns / 1e9:.3f} s"
    minutes, rest = divmod(ns, 60_000_000_000)
    return f"{sign}{minutes} min {rest / 1e9:04.1f} s"
