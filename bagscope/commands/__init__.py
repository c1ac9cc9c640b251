"""One module per ``replay`` command: each parses its options and prints; the work is in the
library. ``bagscope.cli`` registers them."""
