"""The pieces every HTML page of the bench shares: escaping, tables, status badges, charts.

A page is one self-contained file that works opened from disk with no network: its
style and its one small script are written into it, and its charts are the run's own
SVG files written inline (matplotlib's SVG, whose points already carry ``<title>``
elements for hover where ``bench.present.chart_style`` sets them) or, when a chart has
only a PNG, that PNG as a ``data:`` URI. Nothing here names a URL to fetch.

Built with the standard library's ``html.escape`` only: jinja2 is a dev and notebooks
extra, not something ``pip install -e .`` installs, and the pages are small enough that
string building stays readable.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# The verdict's statuses (bench.store.schema.VERDICT_STATUSES) and a comparison's classes,
# each with the colour its badge is drawn in; anything else is grey.
STATUS_CLASSES: dict[str, str] = {
    "SUPPORTED": "yes",
    "PARTLY SUPPORTED": "partly",
    "NOT SUPPORTED": "no",
    "INCONCLUSIVE": "unclear",
    # The io_uring question's answers (bench.analyse.rules.uring).
    "YES": "yes",
    "PARTLY": "partly",
    "NO": "no",
}

_CSS = """
:root { --yes:#1a7f37; --partly:#9a6700; --no:#cf222e; --unclear:#57606a; --line:#d0d7de; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1em 1.5em; color: #1f2328; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid var(--line); padding-bottom: .2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid var(--line); padding: .25em .5em; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-dir="asc"]::after { content: " \\25B2"; }
table.sortable th[data-dir="desc"]::after { content: " \\25BC"; }
.badge { display: inline-block; padding: .05em .5em; border-radius: 1em; color: #fff;
         font-weight: 600; font-size: .85em; white-space: nowrap; background: var(--unclear); }
.badge.yes { background: var(--yes); } .badge.partly { background: var(--partly); }
.badge.no { background: var(--no); } .badge.unclear { background: var(--unclear); }
.rule { border-left: 4px solid var(--line); margin: .4em 0; padding: .2em .8em;
        background: #f6f8fa; font-size: .9em; }
.warn { border-left: 4px solid var(--partly); background: #fff8c5; padding: .4em .8em; }
figure.chart { margin: 1em 0; } figure.chart svg, figure.chart img { max-width: 100%;
         height: auto; } figcaption { font-weight: 600; }
.beyond { background: #ffebe9; } .muted { color: #57606a; }
tr.flagged td { color: #57606a; font-style: italic; }
input.filter { padding: .3em; width: 20em; }
.scroll { overflow-x: auto; max-width: 100%; }
details > summary { cursor: pointer; }
"""

# Sorts a table.sortable by the clicked column (numbers as numbers) and filters the rows
# of the table an input.filter names (data-table) by the text typed, case-insensitive.
_SCRIPT = """
(function () {
  function key(cell) {
    var t = cell.textContent.trim(), n = parseFloat(t.replace(/,/g, ""));
    return (t !== "" && !isNaN(n) && /^[-+0-9.,eE]+$/.test(t)) ? n : t.toLowerCase();
  }
  function compare(a, b) {
    if (typeof a === typeof b) { return a < b ? -1 : a > b ? 1 : 0; }
    return typeof a === "number" ? -1 : 1;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, col) {
      th.addEventListener("click", function () {
        var dir = th.getAttribute("data-dir") === "asc" ? "desc" : "asc";
        table.querySelectorAll("thead th").forEach(function (o) { o.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", dir);
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var c = compare(key(r1.cells[col]), key(r2.cells[col]));
          return dir === "asc" ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var count = document.getElementById(input.getAttribute("data-count"));
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\\s+/).filter(Boolean), shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        var text = r.textContent.toLowerCase();
        var keep = words.every(function (w) { return text.indexOf(w) >= 0; });
        r.style.display = keep ? "" : "none";
        shown += keep ? 1 : 0;
      });
      if (count) { count.textContent = shown; }
    });
  });
})();
"""


def esc(value: Any) -> str:
    """Text for HTML; None and NaN read as empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True)


def num(value: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant figures; 'n/a' when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def interval(lo: Any, hi: Any) -> str:
    return f"[{num(lo)}, {num(hi)}]"


def badge(status: str) -> str:
    """A status in its colour (``STATUS_CLASSES``)."""
    css = STATUS_CLASSES.get(status.upper(), "unclear")
    return f'<span class="badge {css}" data-status="{esc(status)}">{esc(status)}</span>'


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    table_id: str | None = None,
    sortable: bool = False,
    row_classes: Sequence[str] | None = None,
) -> str:
    """An HTML table; cells are HTML already (escape text with ``esc``)."""
    attrs = f' id="{esc(table_id)}"' if table_id else ""
    attrs += ' class="sortable"' if sortable else ""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = row_classes[i] if row_classes and row_classes[i] else ""
        tr = f'<tr class="{cls}">' if cls else "<tr>"
        body.append(tr + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    # A wide table scrolls inside its box instead of widening the page.
    return (
        f'<div class="scroll"><table{attrs}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def filter_box(table_id: str, total: int, what: str) -> str:
    """A text box that filters the rows of ``table_id`` (every word typed must appear)."""
    count_id = f"{table_id}-count"
    return (
        f'<p><input class="filter" type="search" data-table="{esc(table_id)}" '
        f'data-count="{count_id}" placeholder="filter {esc(what)}: e.g. epoll idle-scaling" '
        f'aria-label="filter {esc(what)}"> showing <span id="{count_id}">{total}</span> of '
        f"{total} {esc(what)}; click a column heading to sort.</p>"
    )


_XML_PROLOGUE = re.compile(r"^\s*(<\?xml[^>]*\?>)?\s*(<!DOCTYPE[^>]*>)?\s*", re.S)
_SVG_IDS = re.compile(r'(id="|url\(#|href="#)([^")]+)')


def inline_svg(path: Path, prefix: str) -> str:
    """An SVG file's markup to write into a page: prologue dropped, ids made unique.

    matplotlib names its clip paths and glyphs with ids that repeat from file to file;
    several charts on one page would share them, so each gets ``prefix``.
    """
    text = _XML_PROLOGUE.sub("", path.read_text(encoding="utf-8"), count=1)
    return _SVG_IDS.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)


def chart_figure(charts_dir: Path, name: str, caption: str, extra: str = "") -> str | None:
    """A chart of the run as a ``<figure>``: its SVG inline, else its PNG as a data URI;
    None when the run has neither file."""
    svg, png = charts_dir / f"{name}.svg", charts_dir / f"{name}.png"
    if svg.is_file():
        body = inline_svg(svg, slug(name))
    elif png.is_file():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        body = f'<img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
    else:
        return None
    return (
        f'<figure class="chart" id="chart-{slug(name)}" data-chart="{esc(name)}">'
        f"<figcaption>{esc(caption)}</figcaption>{body}{extra}</figure>"
    )


def chart_files(charts_dir: Path) -> list[str]:
    """The stems of every chart the run folder holds (SVG or PNG), sorted."""
    if not charts_dir.is_dir():
        return []
    return sorted({p.stem for p in charts_dir.iterdir() if p.suffix in (".svg", ".png")})


def document(title: str, body: str) -> str:
    """The whole page: style and script inline, no external resource."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>{body}"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


def write_page(path: Path, text: str) -> Path:
    from bench.store.results import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))
    return path
