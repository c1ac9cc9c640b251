"""What a user can ask the simulator for, and what they get when they ask for nothing.

The validating modules (``config``, ``faults``, ``writer``) and ``replay simulate --help`` read
the same tuples, so the help can never list a scenario, format or fault kind the simulator does
not know. They live apart from those modules because those import numpy and rosbags, and the
help must answer without either.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ALLOWED_BEAMS",
    "DEFAULT_BEAMS",
    "DEFAULT_CAMERA_SIZE",
    "DEFAULT_DURATION_NS",
    "DEFAULT_FORMAT",
    "DEFAULT_SCENARIO",
    "DEFAULT_SEED",
    "DURATION_KINDS",
    "FAULT_EXAMPLES",
    "FAULT_KINDS",
    "FAULT_MEANINGS",
    "FORMATS",
    "PROBABILITY_KINDS",
    "SCENARIOS",
    "STEP_KINDS",
    "TOPICLESS_KINDS",
    "WINDOW_KINDS",
    "fault_syntax",
]

SCENARIOS: tuple[str, ...] = ("urban", "highway", "parking")
DEFAULT_SCENARIO = "urban"
DEFAULT_SEED = 0
DEFAULT_DURATION_NS = 20_000_000_000

ALLOWED_BEAMS: tuple[int, ...] = (16, 32, 64, 128)
# 64 beams x 1024 columns is an Ouster OS-64's default mode; 480x270 keeps the default drive
# faster than real time on two cores (see ``bench/simulate.py`` and ``config``).
DEFAULT_BEAMS = 64
DEFAULT_CAMERA_SIZE: tuple[int, int] = (480, 270)

FORMATS: tuple[str, ...] = ("mcap", "db3", "bag")
# ROS 2's own default storage since Iron, and the only format that is a single self-describing
# file readable without a ROS install.
DEFAULT_FORMAT = "mcap"

PROBABILITY_KINDS: tuple[str, ...] = ("drop", "duplicate", "reorder", "corrupt", "zero_stamps")
WINDOW_KINDS: tuple[str, ...] = ("outage", "stale_tf", "freeze", "blocked_sector")
DURATION_KINDS: tuple[str, ...] = ("delay", "jitter", "clock_offset", "drift")
# Something that happens once, at an instant, and stays: one START and a size.
STEP_KINDS: tuple[str, ...] = ("pose_jump",)
FAULT_KINDS: tuple[str, ...] = (*PROBABILITY_KINDS, *WINDOW_KINDS, *DURATION_KINDS, *STEP_KINDS)
# A stale TF is the odom -> base_link stream going quiet, so the topic is implied.
TOPICLESS_KINDS: tuple[str, ...] = ("stale_tf",)

FAULT_MEANINGS: Mapping[str, str] = MappingProxyType(
    {
        "drop": "each message is lost with probability P",
        "duplicate": "each message is written twice with probability P",
        "reorder": "each message arrives after its successor with probability P",
        "corrupt": "each payload disagrees with its own sizes with probability P "
        "(point cloud and image topics)",
        "zero_stamps": "each header stamp is written as 0 with probability P (log time unchanged)",
        "outage": "no messages from START for LENGTH",
        "stale_tf": "no /tf from START for LENGTH",
        "freeze": "from START for LENGTH messages keep coming with fresh header stamps but "
        "repeat the content of the last one before START",
        "blocked_sector": "from START for LENGTH no lidar returns with azimuth FROM to TO "
        "degrees (lidar frame, atan2(y, x), counterclockwise; 0..360 or -180..180; "
        "point cloud topic)",
        "delay": "log (receive) time is DURATION after the stamp",
        "jitter": "header stamps get Gaussian noise of σ = DURATION",
        "clock_offset": "header stamps are shifted by DURATION (may be negative)",
        "drift": "header stamps run ahead by N µs per second since the drive's start "
        "(a clock N ppm fast; may be negative)",
        "pose_jump": "from START on, odometry and the odom → base_link TF are off by DISTANCE "
        "metres along the ego's heading at START (odometry topic)",
    }
)

# One item per kind that the default drive accepts as written: ``--help`` shows them, and the
# tests parse every one against the default scenario's topics.
FAULT_EXAMPLES: Mapping[str, str] = MappingProxyType(
    {
        "drop": "drop:/lidar/points=0.1",
        "duplicate": "duplicate:/imu=0.05",
        "reorder": "reorder:/tf=0.1",
        "corrupt": "corrupt:/lidar/points=0.01",
        "zero_stamps": "zero_stamps:/camera/image/compressed=0.02",
        "outage": "outage:/camera/image/compressed=12s+1.5s",
        "stale_tf": "stale_tf:8s+2s",
        "freeze": "freeze:/camera/image/compressed=5s+3s",
        "blocked_sector": "blocked_sector:/lidar/points=4s+3s@30:90",
        "delay": "delay:/camera/camera_info=40ms",
        "jitter": "jitter:/odom=5ms",
        "clock_offset": "clock_offset:/lidar/points=-80ms",
        "drift": "drift:/imu=2000ppm",
        "pose_jump": "pose_jump:/odom=6s+6m",
    }
)

# What stands after ``=`` for kinds whose value is not the plain one of their group.
_VALUES: Mapping[str, str] = MappingProxyType(
    {
        "blocked_sector": "START+LENGTH@FROM:TO",
        "drift": "Nppm",
        "pose_jump": "START+DISTANCE",
    }
)


def fault_syntax(kind: str) -> str:
    """How one ``kind`` item is spelled in a fault spec, e.g. ``drop:/TOPIC=P``."""
    if kind in _VALUES:
        value = _VALUES[kind]
    elif kind in PROBABILITY_KINDS:
        value = "P"
    elif kind in WINDOW_KINDS:
        value = "START+LENGTH"
    else:
        value = "DURATION"
    return f"{kind}:{value}" if kind in TOPICLESS_KINDS else f"{kind}:/TOPIC={value}"
