"""A static HTML gallery that opens from disk: no server, no network, no external files.

The page is one HTML file; its script and style are inline, the data rides along as JSON in a
``<script type="application/json">`` block, and images are relative links (or, with
``embed=True``, data URIs, which make the file stand alone). A Content-Security-Policy allows
only the page's own script (by hash), inline style and local images, so even a string that
slipped past escaping could not run code or reach the network.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote

from rem_core.atomic import atomic_write_text
from rem_viz.palette import category_color, color_hex


@dataclass
class Card:
    """One gallery item (an image). Paths are relative to the page.

    ``sort`` holds the numbers the sort options read (by key); ``category_sort`` holds, per
    category, the number a per-category sort uses when that category is the filter. ``rows``
    fill the viewer's table under the enlarged image (strings, one list per row).
    """

    key: str
    title: str
    thumb: str
    full: str
    categories: list[str]
    sort: dict[str, float | None] = field(default_factory=dict)
    category_sort: dict[str, float] = field(default_factory=dict)
    subtitle: str = ""
    badge: str = ""
    rows: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class SortOption:
    """A sort of the cards by ``Card.sort[key]``; ``per_category`` switches to
    ``Card.category_sort[category]`` while a category filter is on."""

    key: str
    label: str
    descending: bool = True
    per_category: bool = False


def json_for_script(obj) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>``, ``&`` and line separators escaped,
    so no string can close the element or open a comment."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, esc)
    return text


def _asset(name: str) -> str:
    return files("rem_viz").joinpath("templates", name).read_text(encoding="utf-8")


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def category_entries(cards: Sequence[Card], ids: Mapping[str, int] | None = None) -> list[dict]:
    """Filter entries: each category on any card, its colour and how many cards hold it."""
    counts: dict[str, int] = {}
    for card in cards:
        for name in card.categories:
            counts[name] = counts.get(name, 0) + 1
    ids = ids or {}
    return [
        {
            "name": name,
            "count": counts[name],
            "color": color_hex(category_color(ids[name])) if name in ids else "#999999",
        }
        for name in sorted(counts, key=str.casefold)
    ]


def write_gallery(
    path: str | Path,
    *,
    title: str,
    cards: Sequence[Card],
    sorts: Sequence[SortOption],
    columns: Sequence[str] = (),
    category_ids: Mapping[str, int] | None = None,
    subtitle: str = "",
    item_name: str = "images",
    summary: tuple[Sequence[str], Sequence[Sequence[str]]] | None = None,
    figures: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
    page_size: int = 24,
    embed: bool = False,
) -> Path:
    """Write the gallery page to ``path`` and return it.

    ``summary`` is (column names, rows) for a table above the gallery whose first column holds
    category names (clicking a row filters by it); ``figures`` are (title, relative path) of
    plots; ``notes`` are lines shown in a notice box (missing images...). With ``embed`` every
    referenced image is inlined as a data URI.
    """
    from rem_viz import __version__

    path = Path(path)
    base = path.parent

    def link(ref: str) -> str:
        # Percent-encoding keeps a name with '#', '?', ':' or spaces a plain relative path.
        return _data_uri(base / ref) if embed else quote(ref)

    data = {
        "title": title,
        "subtitle": subtitle,
        "item_name": item_name,
        "page_size": int(page_size),
        "categories": category_entries(cards, category_ids),
        "sorts": [
            {
                "key": s.key,
                "label": s.label,
                "descending": s.descending,
                "per_category": s.per_category,
            }
            for s in sorts
        ],
        "columns": list(columns),
        "summary": None
        if summary is None
        else {
            "columns": list(summary[0]),
            "rows": [list(r) for r in summary[1]],
            "category_column": 0,
        },
        "figures": [{"title": t, "src": link(src)} for t, src in figures],
        "notes": list(notes),
        "cards": [
            {
                "key": c.key,
                "title": c.title,
                "subtitle": c.subtitle,
                "badge": c.badge,
                "thumb": link(c.thumb),
                "full": link(c.full),
                "categories": list(c.categories),
                "sort": c.sort,
                "category_sort": c.category_sort,
                "rows": c.rows,
            }
            for c in cards
        ],
    }
    script = _asset("gallery.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = (
        "default-src 'none'; "
        f"script-src 'sha256-{digest}'; "
        "style-src 'unsafe-inline'; "
        "img-src 'self' data: file:; "
        "base-uri 'none'; form-action 'none'"
    )
    values = {
        "CSP": html.escape(csp, quote=True),
        "VERSION": html.escape(__version__),
        "TITLE": html.escape(title),
        "CSS": _asset("gallery.css"),
        "DATA": json_for_script(data),
        "SCRIPT": script,
    }
    # One pass over the template: text from the data is never scanned for placeholders again.
    page = re.sub(r"\{\{([A-Z]+)\}\}", lambda m: values[m.group(1)], _asset("gallery.html"))
    atomic_write_text(path, page)
    return path
