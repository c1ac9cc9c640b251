"""The markup both pages of bagscope are built from (``report.html`` and a batch's
``summary.html``): escaping, a card section and a table, so the two look and escape alike."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["escape", "section", "table"]


def escape(value: object) -> str:
    """Escape anything for HTML text and attribute values (quotes included)."""
    return html.escape(str(value), quote=True)


def section(anchor: str, title: str, body: str, *, count: str = "") -> str:
    """A card with a heading (and a small count beside it)."""
    extra = f' <span class="count">{escape(count)}</span>' if count else ""
    return (
        f'<section class="card" id="{anchor}">\n<h2>{escape(title)}{extra}</h2>\n{body}\n</section>'
    )


def table(head: Sequence[tuple[str, bool]], rows: Iterable[str], *, cls: str = "") -> str:
    """A table; ``head`` holds (label, numeric) pairs, ``rows`` ready-made ``<tr>`` markup."""
    ths = "".join(f"<th{' class=num' if num else ''}>{escape(label)}</th>" for label, num in head)
    cls_attr = f' class="{cls}"' if cls else ""
    return (
        f'<div class="scroll"><table{cls_attr}><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
