"""Model stages: they add outputs to a frame (points kept, boxes found, tracks, projections,
a network's results) for the stages after them. One module each; this table names them for
pipeline files (``module:Class`` targets, imported only when a run asks for them).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DETECTION_PIPELINE", "DETECTOR", "MODELS", "TRUTH_MIN_POINTS"]

MODELS: Mapping[str, str] = MappingProxyType(
    {
        "deskew": "bagscope.models.deskew:Deskew",
        "voxel_downsample": "bagscope.models.voxel:VoxelDownsample",
        "crop": "bagscope.models.crop:Crop",
        "ground_segmentation": "bagscope.models.ground:GroundSegmentation",
        "clustering": "bagscope.models.clustering:Clustering",
        "project_to_camera": "bagscope.models.projection:ProjectToCamera",
        "tracker": "bagscope.models.tracker:Tracker",
        "onnx": "bagscope.models.onnx:OnnxModel",
    }
)

# `replay analyze --detect`: the built-in lidar detector and tracker, as a pipeline file would
# list them ([[stages]] use + parameters), evaluated at the detector's output.
DETECTION_PIPELINE: tuple[tuple[str, Mapping[str, object]], ...] = (
    ("deskew", {}),
    ("voxel_downsample", {"input": "deskew"}),
    ("ground_segmentation", {"input": "voxel_downsample"}),
    ("clustering", {"input": "ground_segmentation"}),
    ("tracker", {"input": "clustering"}),
)
DETECTOR = "clustering"
# Truths hit by fewer lidar points are "don't care" (a car hidden behind a car): no detector
# can be asked to find them, nuScenes-style.
TRUTH_MIN_POINTS = 5
