"""HTML building blocks of the report: escaping, numbers, tables, embedded images, site names.

Every string that comes from the user's data or model goes through :func:`esc` (text and
attribute values alike), so no coord label, site or feature name can become markup.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["esc", "img", "num", "site_cell", "table"]


def esc(value: Any) -> str:
    """HTML-escape any value's text (quotes included)."""
    return html.escape(str(value), quote=True)


def img(png: bytes, alt: str, *, css: str = "") -> str:
    """A PNG embedded as a ``data:`` URI."""
    data = base64.b64encode(png).decode("ascii")
    style = f' class="{esc(css)}"' if css else ""
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}"{style}>'


def num(value: Any, fmt: str = "{:.3f}") -> str:
    """A right-aligned number cell (``—`` for a missing value)."""
    if value is None:
        return '<td class="num">—</td>'
    try:
        v = float(value)
    except (TypeError, ValueError):
        return f'<td class="num">{esc(value)}</td>'
    if not np.isfinite(v):
        return '<td class="num">—</td>' if np.isnan(v) else f'<td class="num">{esc(v)}</td>'
    return f'<td class="num">{esc(fmt.format(v))}</td>'


def table(header: Sequence[str], rows: Sequence[str], *, css: str = "") -> str:
    """A table with *header* cells (text, escaped) and pre-built ``<tr>`` *rows*."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    style = f' class="{esc(css)}"' if css else ""
    return f"<table{style}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def site_cell(label: str, full: str) -> str:
    """A site's short label with its full name as a tooltip (``title``), in a ``<code>``."""
    return f'<code title="{esc(full)}">{esc(label)}</code>'
