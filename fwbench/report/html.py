"""The report as one self-contained HTML page (pure: markdown text and PNG bytes in, HTML text out).

The page is the markdown report (:func:`fwbench.report.markdown.render`, so both formats always say the
same thing) converted with Python-Markdown (the ``markdown`` package, imported lazily), wrapped in a
complete document: inline CSS, the plots embedded as ``data:`` PNGs, and one small inline script that
sorts every table by a click on a header. Nothing is loaded from anywhere: no CDN, font, stylesheet or
link to follow; a Content-Security-Policy allows only that one script (by its hash), inline styles and
``data:`` images.

The markdown's user text is already inert (:func:`fwbench.textsafe.md_text` turns ``<``, ``>`` and ``&``
into entities); on top of that the conversion here honours no raw HTML except ``<br>``, and a final pass
over the element tree keeps only an allow-list of tags and attributes: links only to ``#`` anchors in the
page, images only the report's own plots (as ``data:`` URIs).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from typing import Any, Mapping

# tag -> attributes kept (everything Python-Markdown makes from the report's markdown with the extensions
# below: tables, sane lists, footnotes); anything else is turned into a plain <span>
ALLOWED: dict[str, frozenset[str]] = {
    **{t: frozenset() for t in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "em",
                                "strong", "code", "pre", "br", "hr", "table", "thead", "tbody", "tr", "span",
                                "del", "sup", "sub", "div")},
    "ol": frozenset({"start"}),
    "th": frozenset({"align", "style"}),
    "td": frozenset({"align", "style"}),
    "a": frozenset({"href", "id", "class", "title"}),
    "li": frozenset({"id"}),
    "sup": frozenset({"id"}),
    "div": frozenset({"class"}),
    "img": frozenset({"src", "alt", "title", "loading"}),
}
EXTENSIONS = ("tables", "sane_lists", "footnotes")
_SAFE_STYLE = re.compile(r"^text-align: ?(left|right|center);?$")

CSS = """
:root { color-scheme: light dark; --fg: #1b1f23; --bg: #fff; --muted: #57606a; --line: #d0d7de;
        --head: #f3f5f7; --stripe: #fafbfc; --code: #f3f5f7; --accent: #0969da; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9da7b3; --line: #3d444d; --head: #161b22;
          --stripe: #11161d; --code: #1f242c; --accent: #58a6ff; } }
html { background: var(--bg); color: var(--fg); }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "PingFang SC",
       "Microsoft YaHei", sans-serif; max-width: 78rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1, h2, h3 { line-height: 1.25; margin: 1.6em 0 .6em; }
h1 { font-size: 1.8rem; margin-top: .4em; } h2 { font-size: 1.4rem; border-bottom: 1px solid var(--line);
     padding-bottom: .2em; } h3 { font-size: 1.15rem; }
blockquote { margin: 1em 0; padding: .4em 1em; border-left: 4px solid var(--accent); background: var(--stripe); }
blockquote p { margin: .3em 0; }
code { font: .88em/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
       background: var(--code); padding: .1em .3em; border-radius: 4px; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: .8em 0 1.4em; font-size: .92em; max-width: 100%; }
th, td { border: 1px solid var(--line); padding: .35em .6em; vertical-align: top; text-align: left; }
thead th { background: var(--head); font-weight: 600; }
tbody tr:nth-child(even) { background: var(--stripe); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th.sortable { cursor: pointer; user-select: none; white-space: nowrap; }
th.sortable:hover, th.sortable:focus { color: var(--accent); outline: none; }
th.sortable::after { content: " \\2195"; color: var(--muted); font-size: .85em; }
th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--accent); }
th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--accent); }
img { max-width: 100%; height: auto; display: block; margin: .8em 0; border: 1px solid var(--line); }
.footnote { font-size: .9em; color: var(--muted); }
@media print {
  :root { --fg: #000; --bg: #fff; --line: #999; --head: #eee; --stripe: #fff; --code: #f3f3f3; }
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  th.sortable::after { content: none !important; }
  thead { display: table-header-group; }
  tr, img { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
}
"""

# Sorting: a click (or Enter / Space) on a header sorts its table's body by that column, ascending then
# descending. Cells that start with a number sort by it (thousands separators, a leading ~ ± < >, the time
# units ns / µs / ms / s / min / h and the sizes B, KiB … TiB, kB … TB are understood, so "950 µs" <
# "1.2 ms" and "962.1 MiB" < "1.0 GiB"); numbers come before text,
# text compares naturally ("w2" < "w10"), blank and dash cells stay last; ties keep the original order.
SCRIPT = r"""
(function () {
  "use strict";
  var UNIT = {"ns": 1e-9, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1, "min": 60, "h": 3600,
              "B": 1, "KiB": 1024, "MiB": 1048576, "GiB": 1073741824, "TiB": 1099511627776,
              "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12};
  var NUM = /^[~\u2248<>\u2264\u2265+\u00b1]?\s*([+\-\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+\-]?\d+)?)\s*(ns|\u00b5s|\u03bcs|us|ms|min|s|h|[KMGT]iB|[kKMGT]B|B)?(?![A-Za-z])/;
  var BLANK = /^[\s\u2014\u2013\-\u00b7?]*$/;
  function key(cell) {
    var text = (cell.textContent || "").trim();
    if (BLANK.test(text)) return {blank: true, num: null, text: text};
    // a speedup reads "2.1× faster" / "1.7× slower" (zh: "快 2.1×" / "慢 1.7×"): sort by speed, slower below 1
    var slower = /\bslower\b|^\u6162/.test(text);
    var m = NUM.exec(text.replace(/^[\u5feb\u6162]\s*/, ""));
    if (!m) return {blank: false, num: null, text: text};
    var v = parseFloat(m[1].replace(/,/g, "").replace("\u2212", "-"));
    if (m[2]) v *= UNIT[m[2]];
    if (slower && v > 0) v = 1 / v;
    return {blank: false, num: v, text: text};
  }
  function compare(a, b) {
    if (a.num !== null && b.num !== null) return a.num - b.num;
    if (a.num !== null) return -1;
    if (b.num !== null) return 1;
    return a.text.localeCompare(b.text, undefined, {numeric: true, sensitivity: "base"});
  }
  function sortBy(table, th, col) {
    var body = table.tBodies[0];
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    var sign = dir === "ascending" ? 1 : -1;
    var rows = Array.prototype.map.call(body.rows, function (row, i) {
      return {row: row, i: i, k: key(row.cells[col] || row.insertCell())};
    });
    rows.sort(function (x, y) {
      if (x.k.blank !== y.k.blank) return x.k.blank ? 1 : -1;
      return (x.k.blank ? 0 : sign * compare(x.k, y.k)) || x.i - y.i;
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    rows.forEach(function (r) { body.appendChild(r.row); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table"), function (table) {
    if (!table.tHead || !table.tBodies.length || !table.tHead.rows.length) return;
    var rows = table.tBodies[0].rows;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      var keys = Array.prototype.map.call(rows, function (r) { return r.cells[col] ? key(r.cells[col]) : null; })
        .filter(function (k) { return k && !k.blank; });
      if (keys.length && keys.every(function (k) { return k.num !== null; })) {
        th.classList.add("num");
        Array.prototype.forEach.call(rows, function (r) { if (r.cells[col]) r.cells[col].classList.add("num"); });
      }
      th.classList.add("sortable");
      th.tabIndex = 0;
      th.title = "Sort";
      th.addEventListener("click", function () { sortBy(table, th, col); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th, col); }
      });
    });
  });
})();
"""


def csp(script: str = SCRIPT) -> str:
    """The page's Content-Security-Policy: nothing from anywhere, except the one script (by hash), inline
    styles (the page's own, and the alignment Python-Markdown may write on table cells) and data: images."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _converter(images: Mapping[str, bytes]) -> Any:
    """A Python-Markdown converter that honours no raw HTML but ``<br>``, embeds ``images`` (path in the
    markdown -> PNG bytes) and keeps only the allow-listed tags and attributes."""
    import markdown
    from markdown.inlinepatterns import SubstituteTagInlineProcessor
    from markdown.treeprocessors import Treeprocessor

    class Sanitise(Treeprocessor):
        def run(self, root: Any) -> None:
            for el in root.iter():
                if not isinstance(el.tag, str):
                    continue
                if el.tag not in ALLOWED:
                    el.tag = "span"
                    el.attrib.clear()
                keep = ALLOWED[el.tag]
                for name in list(el.attrib):
                    value = el.attrib[name]
                    ok = name in keep and not (
                        (name == "href" and not value.startswith("#"))
                        or (name == "style" and not _SAFE_STYLE.match(value))
                        or (name == "src" and value not in images)
                        or (name == "start" and not value.isdigit()))
                    if not ok:
                        del el.attrib[name]
                if el.tag == "img":
                    if "src" in el.attrib:
                        el.set("src", data_uri(images[el.attrib["src"]]))
                        el.set("loading", "eager")
                    else:  # not one of the report's plots: its caption as text, nothing to load
                        el.tag, el.text = "span", el.attrib.pop("alt", "")
                        el.attrib.clear()

    md = markdown.Markdown(extensions=list(EXTENSIONS), output_format="html")
    # md_text backslash-escapes these too (GitHub reads them as math / strikethrough); Python-Markdown must
    # then drop the backslash, as it does for the others
    md.ESCAPED_CHARS = list(dict.fromkeys([*md.ESCAPED_CHARS, "$", "~", "|"]))
    md.preprocessors.deregister("html_block")  # raw HTML blocks are shown as text ...
    md.inlinePatterns.deregister("html")  # ... and so is inline HTML, except the report's own line break:
    md.inlinePatterns.register(SubstituteTagInlineProcessor(r"<br\s*/?>", "br"), "br_only", 90)
    md.treeprocessors.register(Sanitise(md), "sanitise", 1)  # after inline (20) and footnotes (50, 15)
    return md


def body(markdown_text: str, images: Mapping[str, bytes] | None = None) -> str:
    """The HTML of the markdown report (the inside of ``<body>``), with ``images`` embedded."""
    return _converter(images or {}).convert(markdown_text)


def page(markdown_text: str, images: Mapping[str, bytes] | None = None, lang: str = "en") -> str:
    """The complete, self-contained HTML page of the markdown report ``markdown_text``.

    ``images``: the report's plots, by the path the markdown gives them (``plots/….png``) -> PNG bytes; an
    image the markdown names that is not among them is shown as its caption. ``lang``: ``en`` or ``zh``.
    """
    inner = body(markdown_text, images)
    m = re.search(r"<h1>(.*?)</h1>", inner, re.S)
    title = html.escape(html.unescape(re.sub(r"<[^>]*>", "", m.group(1))).strip(), quote=False) if m \
        else "fwbench report"
    return "\n".join([
        "<!DOCTYPE html>",
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp()}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="fwbench">',
        f"<title>{title}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        inner,
        "</main>",
        f"<script>{SCRIPT}</script>",
        "</body>",
        "</html>",
        "",
    ])
