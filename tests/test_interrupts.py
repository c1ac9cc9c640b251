"""Ctrl-C held back over the steps that must not be cut in half."""

from __future__ import annotations

import os
import signal

import pytest

from bagscope.interrupts import deferred_interrupt


def test_ctrl_c_inside_the_block_is_raised_after_it() -> None:
    done = []

    def block() -> None:
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("the rest of the block ran")

    with pytest.raises(KeyboardInterrupt):
        block()
    assert done == ["the rest of the block ran"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_ctrl_c_no_exception() -> None:
    with deferred_interrupt():
        value = 1
    assert value == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
