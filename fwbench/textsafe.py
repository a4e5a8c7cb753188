"""Making user text inert in every output fwbench writes: markdown, terminal, CSV, plots, shell hints.

Workload names, runner names, failure reasons, notes and file names are user data (a results file can hold
anything). Each function here takes such text and returns a form that renders *as itself* in one
destination; renderers call them where they interpolate user text into their own markup, and nowhere
else. Pure functions, standard library only (``term_markup`` imports rich lazily).

* markdown (GitHub-flavoured): :func:`md_text` for running text, :func:`md_code` for a code span (or
  escaped text where a span could carry markup characters);
* terminal: :func:`term_plain` (control characters replaced) and :func:`term_markup` (also rich markup
  escaped), for text printed with and without rich markup;
* CSV: :func:`csv_cell` neutralises spreadsheet formulas (OWASP "CSV injection");
* plots: :func:`plot_text` makes a label literal for matplotlib (no mathtext);
* shell: :func:`shell_join` quotes a suggested command line.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Iterable

# ---------------------------------------------------------------- terminal

# C0 controls (ESC, BEL, CR, backspace ...), DEL, C1 controls, and the bidirectional overrides/isolates
# that reorder what a reader sees ("Trojan Source").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def term_plain(text: Any) -> str:
    """``text`` safe to write to a terminal as is: every control character (escape sequences included)
    becomes ``?``; tabs and newlines become a space, so one field stays on one line."""
    s = str(text)
    s = s.replace("\t", " ").replace("\r\n", " ").replace("\n", " ")
    return _CONTROL.sub("?", s)


def term_markup(text: Any) -> str:
    """:func:`term_plain`, then escaped for rich markup (``[/x]`` and ``[link=…]`` print as themselves)."""
    from rich.markup import escape

    return escape(term_plain(text))


# ---------------------------------------------------------------- markdown

# characters that can start inline markup mid-line in GitHub-flavoured markdown: escapes, code spans,
# emphasis, links / images / footnotes, strikethrough, math, table cells
_MD_BACKSLASH = set("\\`*_[]~$|")
_MD_ENTITY = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
# what a block can start with at the beginning of a line: headings, quotes, lists, rules, setext underlines
_MD_LINE_START = re.compile(r"^(\d{1,9})([.)])(?=\s|$)|^([#+\-=])(?=[\s#=\-]|$)")


def md_text(text: Any, in_table: bool = False) -> str:
    """``text`` as inert inline markdown: one line, control characters replaced (:func:`term_plain`); no
    HTML, entity, link, image, code span, emphasis, strikethrough, math or table-cell break, and no
    heading / list / quote where it starts a line.

    ``<``, ``>`` and ``&`` become HTML entities; the other markup characters are backslash-escaped.
    ``in_table``: the text fills a table cell, where no block can start, so a leading ``-`` or ``1.`` is
    left as is. (A bare ``https://…`` may still be shown as a link by GitHub; its visible text is the
    address itself.)
    """
    s = " ".join(term_plain(text).split())
    out = "".join(_MD_ENTITY.get(ch) or ("\\" + ch if ch in _MD_BACKSLASH else ch) for ch in s)
    if in_table:
        return out
    return _MD_LINE_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}" if m.group(1) else "\\" + m.group(3), out, 1)


def md_code(text: Any, in_table: bool = False) -> str:
    """``text`` as an inline code span, when that is safe to read raw as well as rendered; otherwise as
    :func:`md_text`. Text holding a backtick, ``<``, ``>``, ``&``, ``|``, ``\\`` or the shape of a
    link (``](``, ``][``, ``]:``, ``![``, ``[^``) is not put in a code span: inside one no escape works,
    so the raw markdown would carry the characters of
    HTML or a link (inert once rendered, but not to every reader of the file). ``in_table``: the span
    fills a table cell."""
    s = " ".join(term_plain(text).split())
    if not s:
        return ""
    if _MD_NOT_IN_CODE.search(s):
        return md_text(s, in_table=in_table)
    return f"`{s}`"


_MD_NOT_IN_CODE = re.compile(r"[`<>&|\\]|\]\s*[(\[:]|!\[|\[\^")


# ---------------------------------------------------------------- CSV

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value: Any) -> Any:
    """A value for one CSV field: numbers (and ``None``) stay as they are; text that a spreadsheet would
    read as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) gets a leading
    ``'``, as OWASP advises, so it is shown as text and never executed."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    s = str(value)
    return "'" + s if s.startswith(_FORMULA_START) else s


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [csv_cell(v) for v in values]


# ---------------------------------------------------------------- plots

def plot_text(text: Any) -> str:
    """A matplotlib label that is drawn literally: ``$`` would start mathtext (and a bad formula raises)."""
    return term_plain(text).replace("$", r"\$")


# ---------------------------------------------------------------- shell

def shell_join(words: Iterable[str]) -> str:
    """A command line a reader can paste: every word shell-quoted where it needs it."""
    return " ".join(shlex.quote(str(w)) for w in words)
