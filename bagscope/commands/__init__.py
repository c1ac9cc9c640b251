"""One module per ``replay`` command: each parses its options and prints; the work is in the
library. ``bagscope.cli`` registers them."""

# Every command module imports the shared options from bagscope.cli, and bagscope.cli imports
# the command modules to register them: importing the app first, whichever module a caller
# asks for, keeps that cycle in the one order that works.
import bagscope.cli  # noqa: F401
