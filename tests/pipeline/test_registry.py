"""Stages by name: built-ins, module:Class, and plugins from the bagscope.stages entry points
(a real distribution on sys.path, found by importlib.metadata as an installed one would be)."""

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING

import pytest

from bagscope.pipeline.registry import (
    PluginWarning,
    StageSpecError,
    check_plugins,
    resolve_stage,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    """An installed distribution with two stage entry points: one works, one cannot import."""
    (tmp_path / "good_plugin.py").write_text(
        "class Echo:\n    name = 'echo'\n    def finish(self):\n        return None\n"
    )
    info = tmp_path / "bagscope_test_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bagscope-test-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[bagscope.stages]\necho = good_plugin:Echo\nbroken = missing_module_xyz:Stage\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("good_plugin", None)


def test_builtins_and_module_specs() -> None:
    from bagscope.pipeline.stage import StageResult

    assert resolve_stage("result", builtins={"result": "bagscope.pipeline.stage:StageResult"}) is (
        StageResult
    )
    assert resolve_stage("bagscope.pipeline.stage:StageResult", builtins={}) is StageResult


def test_a_plugin_is_found_by_its_entry_point(plugin_dir: Path) -> None:
    factory = resolve_stage("echo", builtins={})
    assert factory.__name__ == "Echo"
    assert factory.__module__ == "good_plugin"


def test_a_broken_plugin_is_a_warning_naming_it(plugin_dir: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = check_plugins()
    assert "echo" in loaded
    assert "broken" not in loaded
    (warning,) = [w for w in caught if issubclass(w.category, PluginWarning)]
    assert str(warning.message) == (
        "stage plugin 'broken' (missing_module_xyz:Stage) failed to load: "
        "No module named 'missing_module_xyz'"
    )
    with pytest.raises(StageSpecError) as info:
        resolve_stage("broken", builtins={})
    assert str(info.value) == (
        "stage plugin 'broken' (missing_module_xyz:Stage) failed to load: "
        "No module named 'missing_module_xyz'"
    )


def test_unknown_names_get_a_suggestion() -> None:
    with pytest.raises(StageSpecError) as info:
        resolve_stage("topic_helth", builtins={"topic_health": "x:y", "latency": "x:z"})
    assert str(info.value) == (
        "unknown stage 'topic_helth'; did you mean 'topic_health'? stages: latency, topic_health"
    )
    with pytest.raises(StageSpecError) as info:
        resolve_stage("no_such_module_q:Thing", builtins={})
    assert str(info.value) == (
        "stage 'no_such_module_q:Thing': cannot import module 'no_such_module_q' "
        "(No module named 'no_such_module_q')"
    )
