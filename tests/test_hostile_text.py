"""Hostile user text (workload / runner names, reasons, notes, file names) renders inert in every output:
markdown (compare, step summary, report), the terminal (rich markup, escape sequences), CSV (formulas),
plots (mathtext) and suggested shell commands. Several members of each class are tried."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shlex
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from conftest import invoke
from fwbench import results
from fwbench.textsafe import csv_cell, md_code, md_text, plot_text, term_markup, term_plain
from test_compare import cell, doc, repeated, write

GOLDEN = Path(__file__).resolve().parent / "golden"

HOSTILE = [
    "[/x]", "[link=https://evil.example]click[/link]", "[bold red]loud", "\x1b[2J\x1b[Hcleared", "bell\x07\x9b31m",
    "<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "[a](javascript:alert(1))", "![i](https://evil/x.png)",
    "tick`<b>x</b>`tock", "``double``", "$x^2$", r"$\frac{$", "=HYPERLINK(\"http://evil\",\"x\")", "+1", "-2+3",
    "@SUM(A1:A2)", "# heading", "- item", "1. item", "> quote", "*em* _em_ ~~del~~", "a|b", "&amp; &lt;", "x\\",
    "[^1]", "[ref]: https://evil.example",
]

MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")
ACTIVE_HTML = re.compile(r"<(a|img|script|em|strong|del|h\d|li|blockquote|hr)\b")


def active(rendered_html: str) -> list[str]:
    return ACTIVE_HTML.findall(rendered_html)


# ---------------------------------------------------------------- the escapers themselves

@pytest.mark.parametrize("text", HOSTILE)
def test_md_text_renders_as_itself(text: str) -> None:
    out = MD.render(md_text(text))
    assert not active(out), out
    assert "<code>" not in out
    body = re.sub(r"</?p>", "", out).strip()
    assert html.unescape(body) == " ".join(term_plain(text).split()), out


@pytest.mark.parametrize("text", HOSTILE + ["run.json#cnn/torch/cpu/0: summary.median", "a_b *c* $d$ ~e~"])
def test_md_code_renders_as_itself_raw_and_rendered(text: str) -> None:
    md = md_code(text)
    assert "<" not in md and not re.search(r"(?<!\\)\]\(", md) and "``" not in md  # inert raw, too
    out = MD.render("see " + md)
    assert out.count("<code>") <= 1 and not active(out), out
    body = re.sub(r"</?(p|code)>", "", out).strip()[len("see "):]
    assert html.unescape(body) == " ".join(term_plain(text).split())
    if not re.search(r"[`<>&\[\]|\\]", text):
        assert md.startswith("`") and md.endswith("`")  # plain names keep their code formatting


def test_md_in_a_table_cell_keeps_the_row() -> None:
    row = "| " + " | ".join([md_text("a|b", in_table=True), md_code("c|d", in_table=True), "z"]) + " |"
    out = MD.render("| h1 | h2 | h3 |\n|---|---|---|\n" + row)
    assert out.count("<td>") == 3 and "<td>a|b</td>" in out and "<td>c|d</td>" in out


@pytest.mark.parametrize("text", HOSTILE)
def test_terminal_text_has_no_control_and_no_markup(text: str) -> None:
    from rich.console import Console

    plain = term_plain(text)
    assert not re.search("[\x00-\x1f\x7f-\x9f]", plain)
    buf = io.StringIO()
    Console(file=buf, width=200).print(term_markup(text))  # raises MarkupError if the escape failed
    # (rich doubles a trailing backslash so that markup appended after it stays markup)
    assert buf.getvalue().rstrip("\n") == (plain + "\\" if plain.endswith("\\") else plain)


def test_csv_cell_neutralises_text_formulas_only() -> None:
    for bad in ("=HYPERLINK(\"http://evil\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "-0.5"):
        assert csv_cell(bad) == "'" + bad
    for num in (-0.5, 3, 0.0, None):
        assert csv_cell(num) == num
    assert csv_cell("tinymlp") == "tinymlp"


def test_plot_text_has_no_unescaped_dollar() -> None:
    assert plot_text("$x^2$") == r"\$x^2\$" and plot_text("a\x1bb") == "a?b"


# ---------------------------------------------------------------- compare: markdown, step summary, table

def hostile_compare_files(tmp_path: Path, slow: bool = False) -> tuple[str, str]:
    names = HOSTILE[:8] + ["<img src=x onerror=alert(1)>", "tick`x", "$x^2$", "=HYPERLINK(1)"]
    base = [c for i, w in enumerate(names) for c in repeated(seed=1 + i, workload=w, runner="r[/x]`<b>")]
    cur = [c for i, w in enumerate(names) for c in repeated(1.3 if slow else 1.0, seed=50 + i, workload=w,
                                                            runner="r[/x]`<b>")]
    cur.append(cell("gone <a href=x>", status="failed", reason="[link=https://evil]x[/link] <img src=y> `code`"))
    base.append(cell("gone <a href=x>"))
    return write(tmp_path, "base`[x](y).json", doc(base)), write(tmp_path, "cur<b>.json", doc(cur))


def test_compare_markdown_and_step_summary_are_inert(cli, tmp_path, monkeypatch) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    base, cur = hostile_compare_files(tmp_path, slow=True)
    r = invoke(cli, "compare", base, cur, "--format", "markdown")
    assert r.exit_code == 1, r.output
    for text in (r.output, summary.read_text(encoding="utf-8")):
        out = MD.render(text)
        assert out.count("<h3>fwbench compare: ") == 1  # the one heading is fwbench's own
        out = out.replace("<h3>fwbench compare: ", "")
        assert not active(out), [line for line in out.splitlines() if active(line)][:3]
        assert "\x1b" not in text
        # every row kept its ten columns: no name broke the table
        rows = [line for line in out.splitlines() if line.startswith("<tr>")]
        assert rows and all(line.count("<td") == 10 for line in out.split("<tr>")[2:] if "<td" in line)
    assert "&lt;img src=x onerror=alert(1)&gt;" in r.output


def test_compare_table_prints_hostile_names_literally(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    base, cur = hostile_compare_files(tmp_path)
    r = invoke(cli, "compare", base, cur)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code == 0, r.output  # the verdict, never a MarkupError's 1
    assert "[/x]" in r.output and "[link=https://evil" in r.output and "\x1b" not in r.output
    assert "\x1b]8;" not in r.output  # no OSC 8 hyperlink


def test_compare_fails_when_every_current_cell_crashed(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    base = write(tmp_path, "b.json", doc(repeated(seed=1)))
    crashed = write(tmp_path, "c.json", doc([cell(repeat=k, status="failed") for k in range(3)]))
    r = invoke(cli, "compare", base, crashed)
    assert r.exit_code == 1 and "no cell of the current run could be judged" in r.output
    # both sides failed: nothing was lost, the gate does not invent a regression
    r = invoke(cli, "compare", crashed, crashed)
    assert r.exit_code == 0, r.output


def test_compare_broken_pipe_keeps_the_verdict(tmp_path) -> None:
    import os
    import subprocess
    import sys

    names = [f"w{i:04d}-" + "x" * 150 for i in range(250)]  # far more output than a pipe buffer holds
    base = write(tmp_path, "b.json", doc([cell(w, seed=i, n=8) for i, w in enumerate(names)]))
    cur = write(tmp_path, "c.json", doc([cell(w, seed=500 + i, n=8) for i, w in enumerate(names)]))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("GITHUB_STEP_SUMMARY", None)
    for fmt in ("markdown", "table"):
        p = subprocess.Popen([sys.executable, "-m", "fwbench", "compare", base, cur, "--format", fmt],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        p.stdout.readline()
        p.stdout.close()  # as `| head -1` does
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, (fmt, err.decode()[-2000:])
        assert b"Traceback" not in err


# ---------------------------------------------------------------- report: markdown, source notes, hints, CSV, plots

def hostile_results(tmp_path: Path) -> Path:
    d = results.read(GOLDEN / "tiny_all.json")
    rename = {"tinymlp": "mlp`<img src=x onerror=alert(1)>`[a](javascript:alert(1))$x^2$ =HYPERLINK(1)",
              "tinycnn": "=cnn; rm -rf ~ [/x] \x1b[2J"}
    for c in d["cells"]:
        c["workload"] = rename.get(c["workload"], c["workload"])
        c["id"] = f"{c['workload']}/{c['runner']}/{c['device']}/{c.get('repeat', 0)}"
    d["cells"][1].update(status="failed", reason="[link=https://evil]x[/link] <script>alert(1)</script> `x` @SUM(1)",
                         summary=None)
    d["workloads"] = {rename.get(k, k): v for k, v in d["workloads"].items()}
    path = tmp_path / "run `[x](y)` <b>.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    return path


def test_report_markdown_is_inert_and_hints_are_quoted(tmp_path) -> None:
    from fwbench.report.write import write_report

    src = hostile_results(tmp_path)
    write_report([src], tmp_path / "rep", fmt="markdown", plots=True)  # `$x^2$` in a plot title must not raise
    text = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    out = MD.render(text)
    assert not [t for t in active(out) if t not in ("em", "li", "h1", "h2", "h3", "strong", "img", "blockquote")]
    # images are only the report's own plots, emphasis only its own "*Document:*" furniture
    assert all("plots/" in m for m in re.findall(r"<img [^>]*>", out))
    assert "onerror" not in re.sub(r"&lt;.*?&gt;|src=\"plots/[^\"]*\"", "", out)
    assert "<script" not in out and "javascript:" not in re.sub(r"<code>.*?</code>|\(javascript", "", out)
    # the source notes under each table (``- [n] file · id · fields``) are escaped text: no link, no code break-out
    notes = [line for line in text.splitlines() if re.match(r"- \\\[\d+\\\] ", line)]
    assert notes and all(MD.render(n).count("<a") == 0 for n in notes)
    assert "<script>" not in text and "[a](javascript" not in text  # inert raw, too
    # suggested commands paste back into a shell as the same words
    from fwbench.report.build import build_report

    d = results.read(GOLDEN / "tiny_partial.json")  # a partial run: many rows suggest a command
    for c in d["cells"]:
        c["workload"] = "=mlp; rm -rf ~ `x` $(id) [/x]"
    report = build_report([("run.json", d)])
    hints = [h for t in report.seed_tables for r in t.rows for ev in r.evidence.values() for h in ev.hints]
    names = {c["workload"] for c in d["cells"]} | {"ddp"}
    quoted = [h for h in hints if "'" in h]
    assert quoted  # the hostile names needed quoting
    for h in hints:
        words = shlex.split(h)
        assert words[:2] in (["fwbench", "run"], ["fwbench", "probe"])
        assert all(words[i + 1] in names for i, w in enumerate(words) if w == "-w"), h


def test_report_and_export_csv_neutralise_formulas(cli, tmp_path) -> None:
    from fwbench.report.write import write_report

    src = hostile_results(tmp_path)
    write_report([src], tmp_path / "rep", fmt="csv")
    files = [tmp_path / "rep" / "performance.csv", tmp_path / "rep" / "seed_tables.csv"]
    r = invoke(cli, "export", str(src), "--format", "csv", "-o", str(tmp_path / "export.csv"))
    assert r.exit_code == 0, r.output
    files.append(tmp_path / "export.csv")
    for f in files:
        rows = list(csv.reader(io.StringIO(f.read_text(encoding="utf-8"))))
        fields = [v for row in rows for v in row]
        assert not [v for v in fields if v[:1] in ("=", "+", "@", "\t", "\r")
                    or (v.startswith("-") and not re.fullmatch(r"-[\d.e+-]+", v))], f
    perf = list(csv.DictReader(io.StringIO(files[0].read_text(encoding="utf-8"))))
    assert any(row["workload"].startswith("'=cnn") for row in perf)
    assert all(row["median_s"] == "" or float(row["median_s"]) > 0 for row in perf)  # numbers stay numbers


# ---------------------------------------------------------------- the run table

def test_run_table_prints_hostile_names_literally() -> None:
    from rich.console import Console

    from fwbench.cli.console import print_run_tables

    d = results.read(GOLDEN / "tiny_all.json")
    for i, c in enumerate(d["cells"]):
        c["runner"] = HOSTILE[i % len(HOSTILE)]
    d["cells"][0].update(status="failed", reason="[/x] \x1b[2J [link=https://e]x")
    d["parity"] = {"mismatches": ["[/bad]", "\x1b[2J"], "reference": "[link=x]"}
    buf = io.StringIO()
    print_run_tables(d, Console(file=buf, force_terminal=True, width=300))  # a terminal: styles on, markup live
    out = buf.getvalue()
    assert "[/x]" in out and "[link=https://e]" in out and "[/bad]" in out
    assert "\x1b[2J" not in out and "\x1b]8;" not in out
