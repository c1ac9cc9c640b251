"""bagscope: replay robot sensor logs as synced camera + lidar frames and analyse them offline.

What users type is exported here: ``bagscope.open_log``, the sync policies, the decoded record
types and the error classes. The names are imported lazily so that the command line starts
instantly and reading a log never pulls in the visualisation stack; ``dir(bagscope)`` still
lists them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bagscope._lazy import lazy_dir, lazy_getattr

__version__ = "0.1.0"

if TYPE_CHECKING:
    from bagscope.api import Run, load_run, run
    from bagscope.batch import run_batch as batch
    from bagscope.errors import BagscopeError
    from bagscope.replay.decode import (
        CameraImage,
        CameraModel,
        GnssFix,
        ImuSample,
        OdometrySample,
        PointCloud,
        ScanPoints,
    )
    from bagscope.replay.errors import (
        DecodeError,
        DurationError,
        LogOpenError,
        ReplayError,
        SyncError,
        TopicError,
        TransformError,
        TruncatedLogError,
        UnknownTypeError,
        WindowError,
    )
    from bagscope.replay.frame import Frame
    from bagscope.replay.framing import FrameStats, FrameStream
    from bagscope.replay.log import Log, LogInfo, TopicInfo, open_log
    from bagscope.replay.message import Message
    from bagscope.replay.storage.recovery import RecoveredLogWarning
    from bagscope.replay.sync import (
        DEFAULT_QUEUE_SIZE,
        POLICIES,
        ApproximateTimeSync,
        ExactTimeSync,
        NearestSync,
        SyncPolicy,
        make_policy,
    )
    from bagscope.replay.tf import TfView, TransformBuffer
    from bagscope.sim.errors import SimError

_LAZY = {
    # running pipelines from Python
    "run": "bagscope.api",
    "load_run": "bagscope.api",
    "Run": "bagscope.api",
    "batch": "bagscope.batch",
    # reading
    "open_log": "bagscope.replay.log",
    "Log": "bagscope.replay.log",
    "LogInfo": "bagscope.replay.log",
    "TopicInfo": "bagscope.replay.log",
    "Message": "bagscope.replay.message",
    "Frame": "bagscope.replay.frame",
    "FrameStream": "bagscope.replay.framing",
    "FrameStats": "bagscope.replay.framing",
    "TransformBuffer": "bagscope.replay.tf",
    "TfView": "bagscope.replay.tf",
    "RecoveredLogWarning": "bagscope.replay.storage.recovery",
    # sync policies
    "ApproximateTimeSync": "bagscope.replay.sync",
    "ExactTimeSync": "bagscope.replay.sync",
    "NearestSync": "bagscope.replay.sync",
    "SyncPolicy": "bagscope.replay.sync",
    "make_policy": "bagscope.replay.sync",
    "POLICIES": "bagscope.replay.sync",
    "DEFAULT_QUEUE_SIZE": "bagscope.replay.sync",
    # decoded records
    "PointCloud": "bagscope.replay.decode",
    "CameraImage": "bagscope.replay.decode",
    "CameraModel": "bagscope.replay.decode",
    "ImuSample": "bagscope.replay.decode",
    "GnssFix": "bagscope.replay.decode",
    "OdometrySample": "bagscope.replay.decode",
    "ScanPoints": "bagscope.replay.decode",
    # errors
    "BagscopeError": "bagscope.errors",
    "ReplayError": "bagscope.replay.errors",
    "LogOpenError": "bagscope.replay.errors",
    "TruncatedLogError": "bagscope.replay.errors",
    "UnknownTypeError": "bagscope.replay.errors",
    "TopicError": "bagscope.replay.errors",
    "DecodeError": "bagscope.replay.errors",
    "TransformError": "bagscope.replay.errors",
    "SyncError": "bagscope.replay.errors",
    "DurationError": "bagscope.replay.errors",
    "WindowError": "bagscope.replay.errors",
    "SimError": "bagscope.sim.errors",
}

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "POLICIES",
    "ApproximateTimeSync",
    "BagscopeError",
    "CameraImage",
    "CameraModel",
    "DecodeError",
    "DurationError",
    "ExactTimeSync",
    "Frame",
    "FrameStats",
    "FrameStream",
    "GnssFix",
    "ImuSample",
    "Log",
    "LogInfo",
    "LogOpenError",
    "Message",
    "NearestSync",
    "OdometrySample",
    "PointCloud",
    "RecoveredLogWarning",
    "ReplayError",
    "Run",
    "ScanPoints",
    "SimError",
    "SyncError",
    "SyncPolicy",
    "TfView",
    "TopicError",
    "TopicInfo",
    "TransformBuffer",
    "TransformError",
    "TruncatedLogError",
    "UnknownTypeError",
    "WindowError",
    "__version__",
    "batch",
    "load_run",
    "make_policy",
    "open_log",
    "run",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
__dir__ = lazy_dir(globals(), _LAZY)
