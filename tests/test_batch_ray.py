"""``replay batch --engine ray`` on a real local Ray instance: the same runs and failures as the
process pool, errors before any work, and a Ray that is gone again afterwards.

Ray takes seconds to start, so one instance serves the whole module: the ``engine`` fixture
starts it through :class:`RayEngine` (the path ``--engine ray`` takes), and the command line
run in this process finds it connected and uses it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bagscope.batch import BatchError
from bagscope.batch.engine import Outcome
from bagscope.batch.ray_engine import CANCEL_GRACE_S, RayEngine, _host_port
from bagscope.cli import app
from tests.conftest import short_drives

if TYPE_CHECKING:
    from collections.abc import Iterator

runner = CliRunner()
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed (bagscope[ray])"
)


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["batch", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two 1 s drives and one file that is not a log."""
    return short_drives(tmp_path_factory.mktemp("ray_logs"), 2)


@pytest.fixture(scope="module")
def engine() -> Iterator[RayEngine]:
    """A local Ray instance of 2 CPUs, started the way ``--engine ray`` starts one, and
    checked to be gone (its GCS port closed, this process as it was) after the module."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    sigterm = signal.getsignal(signal.SIGTERM)
    environ = dict(os.environ)
    with RayEngine(2) as started:
        started.submit(_double, 0)
        assert started.next_done() == [Outcome(0, value=0)]
        gcs = ray.get_runtime_context().gcs_address
        yield started
    assert not ray.is_initialized()
    host, _, port = gcs.rpartition(":")
    deadline = time.monotonic() + 10
    while True:  # its processes take a moment to go
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError:
            break
        assert time.monotonic() < deadline, f"Ray's GCS still answers at {gcs}"
        time.sleep(0.2)
    assert signal.getsignal(signal.SIGTERM) == sigterm
    assert dict(os.environ) == environ


# -- task functions (module level: Ray workers import them by name) --------------------------
def _double(x: int) -> int:
    return 2 * x


def _raise(message: str) -> None:
    raise ValueError(message)


def _die(code: int) -> None:
    os._exit(code)


def _ones(n: int) -> np.ndarray:
    return np.ones(n)


@dataclass(frozen=True, slots=True)
class Marked:
    """A slow task that leaves a file when it starts and another when it is interrupted."""

    folder: str
    name: str
    seconds: float = 30.0


def _slow(task: Marked) -> str:
    folder = Path(task.folder)
    (folder / f"{task.name}.started").touch()
    try:
        end = time.monotonic() + task.seconds
        while time.monotonic() < end:  # Python code between sleeps: a cancel can land
            time.sleep(0.01)
    except KeyboardInterrupt:
        (folder / f"{task.name}.interrupted").touch()
        raise
    return task.name


def _all(engine: RayEngine) -> dict[int, Outcome]:
    done: dict[int, Outcome] = {}
    while outcomes := engine.next_done():
        done.update((o.ticket, o) for o in outcomes)
    return done


# -- the engine -------------------------------------------------------------------------------
def test_the_local_instance_listens_on_loopback_only(engine: RayEngine) -> None:
    import ray

    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    assert ray.cluster_resources().get("CPU") == 2


def test_outcomes_carry_values_and_the_original_exceptions(engine: RayEngine) -> None:
    values = {engine.submit(_double, i): 2 * i for i in range(3)}
    failed = engine.submit(_raise, "a bad log")
    died = engine.submit(_die, 3)
    array = engine.submit(_ones, 100_000)  # large enough for Ray's object store
    done = _all(engine)
    assert {t: done[t].value for t in values} == values
    error = done[failed].error
    assert type(error) is ValueError  # not Ray's RayTaskError(ValueError)
    assert str(error) == "a bad log"
    assert any("Ray worker" in note for note in getattr(error, "__notes__", []))
    assert done[died].error is not None  # the worker died: an outcome, not a hung batch
    assert done[died].value is None
    ones = done[array].value
    assert ones.sum() == 100_000
    ones[0] = 2  # a plain pickle: writable, as the process pool gives it
    assert engine.next_done() == []


def _interrupt_once_running(folder: Path) -> None:
    """Three slow tasks on one worker: Ctrl-C once the first has started."""
    with RayEngine(1) as one:  # Ray is already up: this engine shares it
        for name in ("first", "second", "third"):
            one.submit(_slow, Marked(str(folder), name))
        deadline = time.monotonic() + 30
        while not (folder / "first.started").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        raise KeyboardInterrupt


def test_leaving_on_an_exception_stops_running_tasks_and_drops_queued_ones(
    engine: RayEngine, tmp_path: Path
) -> None:
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _interrupt_once_running(tmp_path)
    assert time.monotonic() - start < 20 + CANCEL_GRACE_S
    assert (tmp_path / "first.interrupted").exists()  # told, so it could clean up
    assert not list(tmp_path.glob("second.*"))  # never handed to Ray
    assert not list(tmp_path.glob("third.*"))
    import ray

    assert ray.is_initialized()  # it was not that engine's Ray to stop
    engine.submit(_double, 21)
    assert [o.value for o in engine.next_done()] == [42]


# -- replay batch --engine ray ----------------------------------------------------------------
def _rows(path: Path) -> list[tuple[Any, ...]]:
    rows = pq.read_table(path).to_pylist()
    return sorted((tuple(row.items()) for row in rows), key=repr)


def test_a_ray_batch_equals_a_local_batch(
    engine: RayEngine, logs: list[Path], tmp_path: Path
) -> None:
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('[[stages]]\nuse = "topic_health"\n')
    common = [*map(str, logs), "--pipeline", str(pipeline), "--workers", "2", "--no-figures"]
    code, stdout, stderr = invoke(*common, "--out", str(tmp_path / "ray"), "--engine", "ray")
    assert code == 1, stderr
    assert "2 of 3 logs ok (2 run, 0 skipped), 1 failed" in stdout
    code, _, stderr = invoke(*common, "--out", str(tmp_path / "local"))
    assert code == 1, stderr

    failures = {
        name: [json.loads(line) for line in (tmp_path / name / "failures.jsonl").open()]
        for name in ("ray", "local")
    }
    assert [f["log"] for f in failures["ray"]] == [str(logs[2])]
    assert failures["ray"] == failures["local"]  # the same words: the original exception
    ray_rows = _rows(tmp_path / "ray" / "metrics.parquet")
    assert ray_rows
    assert ray_rows == _rows(tmp_path / "local" / "metrics.parquet")
    assert not (tmp_path / "ray" / ".lock").exists()


@needs_ray
def test_an_unreachable_address_is_one_line_and_writes_nothing(
    logs: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    start = time.monotonic()
    code, _, stderr = invoke(
        str(logs[0]), "--out", str(out), "--engine", "ray", "--address", "127.0.0.1:1"
    )
    assert time.monotonic() - start < 10  # a TCP probe, not ray.init's minutes of retries
    assert code == 2
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith("error: cannot reach the Ray cluster at 127.0.0.1:1: ")
    assert not out.exists()


def test_an_address_needs_the_ray_engine(logs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, stderr = invoke(str(logs[0]), "--out", str(out), "--address", "127.0.0.1:6379")
    assert code == 2
    assert stderr == "error: --address names a Ray cluster: it needs --engine ray\n"
    assert not out.exists()
    code, _, stderr = invoke(str(logs[0]), "--out", str(out), "--engine", "dask")
    assert code == 2
    assert stderr == "error: --engine must be local or ray, not 'dask'\n"
    assert not out.exists()


def test_without_ray_the_error_says_how_to_install_it(
    logs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "out"
    code, _, stderr = invoke(str(logs[0]), "--out", str(out), "--engine", "ray")
    assert code == 2
    assert stderr == "error: --engine ray needs Ray: pip install 'bagscope[ray]'\n"
    assert not out.exists()


def test_addresses() -> None:
    assert _host_port("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert _host_port("ray://head:10001") == ("head", 10001)
    assert _host_port("ray://head") == ("head", 10001)
    assert _host_port("head") == ("head", 6379)
    assert _host_port("[::1]:6380") == ("::1", 6380)
    for bad in ("head:port", "head:0", ":6379", "ray://"):
        with pytest.raises(BatchError, match="--address must be host:port or ray://host:port"):
            _host_port(bad)
