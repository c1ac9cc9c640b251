"""Analyzer stages: they observe messages and frames and summarise what they saw as metrics,
events and figures. One module each; this table names them for pipeline files and
``replay analyze`` (``module:Class`` targets, imported only when a run asks for them).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ANALYZERS", "DEFAULT_ANALYSIS", "HEALTH", "QUALITY"]

ANALYZERS: Mapping[str, str] = MappingProxyType(
    {
        "topic_health": "bagscope.analyzers.topic_health:TopicHealth",
        "latency": "bagscope.analyzers.latency:Latency",
        "timestamps": "bagscope.analyzers.timestamps:TimestampAnomalies",
        "freeze": "bagscope.analyzers.freeze:Freeze",
        "tf": "bagscope.analyzers.tf_pose:TfPose",
        "sync": "bagscope.analyzers.sync_quality:SyncQuality",
        "contract": "bagscope.analyzers.contract:RecordingContract",
        "pointcloud": "bagscope.analyzers.pointcloud:PointCloudQuality",
        "image": "bagscope.analyzers.image:ImageQuality",
        "stage_timing": "bagscope.analyzers.stage_timing:StageTiming",
        # against ground truth; runs when a pipeline names a detector (or analyze --detect)
        "detection": "bagscope.analyzers.detection:DetectionEvaluation",
    }
)
# Stamps and bytes only: what `replay analyze --only health` runs, fast on any log.
HEALTH: tuple[str, ...] = (
    "topic_health",
    "latency",
    "timestamps",
    "freeze",
    "tf",
    "sync",
    "contract",
)
# These decode points and pixels.
QUALITY: tuple[str, ...] = ("pointcloud", "image")
# stage_timing last: it reads every other stage's timings.
DEFAULT_ANALYSIS: tuple[str, ...] = (*HEALTH, *QUALITY, "stage_timing")
