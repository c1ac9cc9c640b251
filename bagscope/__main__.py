"""``python -m bagscope`` runs the ``replay`` command line."""

from __future__ import annotations

from bagscope.cli import main

main()
