"""Source labels under each seed table render the same in GitHub (markdown-it: CommonMark + tables),
Python-Markdown and pandoc: every ``[n]`` a cell cites is listed exactly once under the same table, with the
same number and that source's text (``file · id · fields``), and each line of a cell cites its own sources.

Ordered lists are not used because Python-Markdown restarts their numbers at 1; ``[^n]`` footnotes are not
used because every renderer moves them to the end of the document (docs/report.md explains the choice).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest
from markdown_it import MarkdownIt

from fwbench import results
from fwbench.report.build import build_report
from fwbench.report.markdown import render
from fwbench.report.model import Report

GOLDEN = Path(__file__).resolve().parent / "golden"
TRICKY = "r[2] `x` <b> *y*.json"  # a file name with brackets, a backtick, HTML and emphasis


def python_markdown(text: str) -> str:
    markdown = pytest.importorskip("markdown", reason="Python-Markdown not installed (pip install -e .[dev])")
    return markdown.markdown(text, extensions=["tables"])


def github(text: str) -> str:
    return MarkdownIt("commonmark").enable("table").enable("strikethrough").render(text)


def pandoc(reader: str) -> Callable[[str], str]:
    def run(text: str) -> str:
        if not shutil.which("pandoc"):
            pytest.skip("pandoc not installed (apt-get install pandoc)")
        return subprocess.run(["pandoc", "-f", reader, "-t", "html"], input=text.encode(), capture_output=True,
                              check=True, timeout=60).stdout.decode()
    return run


RENDERERS = {"python-markdown": python_markdown, "github": github, "pandoc-markdown": pandoc("markdown"),
             "pandoc-gfm": pandoc("gfm")}


def plain(fragment: str) -> str:
    """Rendered text of an HTML fragment, whitespace collapsed (pandoc wraps long lines)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def label(src: str) -> str:
    """What the list item must say for a source ``file#id: fields``."""
    file, _, rest = src.partition("#")
    record, _, fields = rest.partition(": ")
    return f"{file} · {record} · {fields}"


def report(file: str) -> Report:
    return build_report([(file, results.read(GOLDEN / "tiny_all.json"))])


def seed_section(rendered: str) -> str:
    start = rendered.index("comparison tables, measured")
    end = rendered.index("<h2", start)
    return rendered[start:end]


def check(rep: Report, rendered: str) -> int:
    """Assert the labels of every seed table; return how many citations were checked."""
    tables = seed_section(rendered).split("<table")[1:]
    assert len(tables) == len(rep.seed_tables)
    checked = 0
    for chunk, table in zip(tables, rep.seed_tables):
        body, _, after = chunk.partition("</table>")
        ul = re.search(r"<ul>(.*?)</ul>", after, re.S)
        assert ul, "no list under the table"
        items = [plain(li) for li in re.findall(r"<li>(.*?)</li>", ul.group(1), re.S)]
        listed: dict[int, str] = {}
        for item in items:
            m = re.match(r"\[(\d+)\] (.*)$", item, re.S)
            assert m, item
            assert int(m.group(1)) not in listed, f"[{m.group(1)}] listed twice"
            listed[int(m.group(1))] = m.group(2)
        rows = [r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S) if "<td" in r]
        assert len(rows) == len(table.rows)
        cited: set[int] = set()
        for tr, row in zip(rows, table.rows):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)[1:]
            for td, (key, _) in zip(cells, table.columns):
                lines = [plain(x) for x in re.split(r"<br\s*/?>", td)]
                ev = row.evidence[key]
                for line, finding in zip(lines[1:], ev.findings):  # line 0 is the verdict
                    m = re.search(r"((?:\[\d+\])+)$", line)
                    assert m, line
                    numbers = [int(n) for n in re.findall(r"\d+", m.group(1))]
                    assert [listed[n] for n in numbers] == [label(s) for s in finding.sources]
                    cited.update(numbers)
                    checked += len(numbers)
        assert cited == set(listed), "a listed label no cell cites, or the reverse"
    return checked


@pytest.mark.parametrize("renderer", sorted(RENDERERS))
@pytest.mark.parametrize("file", ["tiny_all.json", TRICKY])
def test_every_cited_label_is_listed_once_under_its_table(renderer: str, file: str) -> None:
    rep = report(file)
    assert check(rep, RENDERERS[renderer](render(rep))) > 50


def test_no_ordered_lists_or_footnote_syntax() -> None:
    text = render(report("tiny_all.json"))
    assert not re.search(r"^\d+\. ", text, re.M)
    assert "[^" not in text.replace("\\[", "")
    assert re.search(r"^- \\\[1\\\] tiny\\_all\.json · ", text, re.M)
