"""The root of every error bagscope raises for a user's mistake.

Each subpackage has its own small hierarchy (``replay.errors``, ``sim.errors``); all of them
derive from :class:`BagscopeError`, so the command line turns exactly those into one red line
and exit code 2, while a real bug keeps its traceback.
"""

from __future__ import annotations


class BagscopeError(Exception):
    """A problem with the user's input: reported in one line, never as a traceback."""
