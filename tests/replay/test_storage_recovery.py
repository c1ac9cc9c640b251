"""Cut-off logs (the robot lost power): read up to the last intact message, or refuse."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import pytest

from bagscope.replay.errors import TruncatedLogError
from bagscope.replay.storage import RecoveredLogWarning, open_storage
from bagscope.replay.types import MessageTypes

from .conftest import CUT_CASES, Sample, data_file, truncate_copy

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(("name", "suffix"), CUT_CASES)
def test_first_60_percent_is_recovered_with_a_warning(
    tmp_path: Path, logs: dict[str, Path], samples: list[Sample], name: str, suffix: str
) -> None:
    cut = truncate_copy(data_file(logs[name]), tmp_path / f"cut{suffix}", 0.6)
    with pytest.warns(RecoveredLogWarning, match=r"recovered \d+ messages spanning") as caught:
        storage = open_storage([cut])
    info = storage.info
    assert not info.complete
    assert info.recovery_note is not None
    assert str(caught[0].message) == info.recovery_note
    got = [(m.connection.topic, m.log_time_ns) for m in storage.messages()]
    # What survives is a prefix of what was written, cut somewhere in the middle.
    assert 0 < len(got) < len(samples)
    assert got == [(s.topic, s.log_time_ns) for s in samples[: len(got)]]
    assert info.message_count == len(got)
    assert (info.start_ns, info.end_ns) == (got[0][1], got[-1][1])
    assert sum(c.count for c in storage.connections) == len(got)
    types = MessageTypes(storage.definitions)
    for message in storage.messages():  # every recovered payload is whole
        conn = message.connection
        types.deserialize(message.data, conn.msgtype, conn.serialization)


@pytest.mark.parametrize(("name", "suffix"), CUT_CASES)
def test_strict_refuses_a_cut_off_log(
    tmp_path: Path, logs: dict[str, Path], name: str, suffix: str
) -> None:
    cut = truncate_copy(data_file(logs[name]), tmp_path / f"cut{suffix}", 0.6)
    with pytest.raises(TruncatedLogError, match="strict") as err:
        open_storage([cut], strict=True)
    assert "\n" not in str(err.value)


def test_seeking_in_a_recovered_log(tmp_path: Path, logs: dict[str, Path]) -> None:
    cut = truncate_copy(logs["ros1_lz4"], tmp_path / "cut.bag", 0.6)
    with pytest.warns(RecoveredLogWarning):
        storage = open_storage([cut])
    times = [m.log_time_ns for m in storage.messages()]
    later = [m.log_time_ns for m in storage.messages(start_ns=times[3])]
    assert later == times[3:]


def test_complete_logs_do_not_warn(logs: dict[str, Path]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in logs.values():
            open_storage([path], strict=True).close()


def test_cut_inside_the_first_record_recovers_nothing(
    tmp_path: Path, logs: dict[str, Path]
) -> None:
    cut = truncate_copy(logs["ros1"], tmp_path / "tiny.bag", 0.001)
    with pytest.warns(RecoveredLogWarning, match="recovered 0 messages"):
        storage = open_storage([cut])
    assert storage.info.message_count == 0
    assert list(storage.messages()) == []


def test_cut_file_inside_a_closed_bag_directory(tmp_path: Path, logs: dict[str, Path]) -> None:
    """metadata.yaml survived but its .mcap did not: still recovered, still reported."""
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_bytes((logs["ros2_mcap"] / "metadata.yaml").read_bytes())
    source = data_file(logs["ros2_mcap"])
    truncate_copy(source, bag / source.name, 0.6)
    with pytest.warns(RecoveredLogWarning, match="no summary"):
        storage = open_storage([bag])
    assert not storage.info.complete
    assert 0 < len(list(storage.messages())) < 26
