"""Terminal output that survives a pipe, the run table's loss column, the command vocabulary (env --format,
report --out-dir / --reference), and reports from several machines."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from conftest import invoke
from fwbench import results
from fwbench.cli.console import loss_column, print_run_tables
from fwbench.report.terminal import NO_TTY_WIDTH, fit, make_console
from fwbench.tables import COLUMNS, run_rows

GOLDEN = Path(__file__).resolve().parent / "golden"


def _piped_table(doc: dict, monkeypatch: pytest.MonkeyPatch, columns: str | None = None) -> str:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    buf = io.StringIO()  # not a terminal, as `fwbench run ... > log.txt`
    print_run_tables(doc, Console(file=buf))
    return buf.getvalue()


@pytest.mark.parametrize("fixture", ["tiny_all.json", "tiny_partial.json"])
def test_run_table_without_a_tty_splits_no_header_and_no_number(fixture, monkeypatch) -> None:
    doc = results.read(GOLDEN / fixture)
    out = _piped_table(doc, monkeypatch)
    for workload, rows in run_rows(doc).items():
        lines = out.split(f"{workload} — ", 1)[1].splitlines()
        header = next(line for line in lines if line.lstrip().startswith("runner"))
        for col in COLUMNS:
            if col not in ("device", "loss"):
                assert col in header, (col, header)
        head, _, _ = loss_column([r.group.first for r in rows])
        assert head in header
        for row in rows:  # each row on one line, every value whole
            line = next(line for line in lines if line.lstrip().startswith(row["runner"] + " "))
            for col in ("step (95% CI)", "processes", "samples/s", "MFU", "first step", "peak mem", "parity"):
                assert row[col] in line, (col, row[col], line)
    assert max(len(line) for line in out.splitlines()) > 80  # the natural width, not rich's 80-column default


def test_columns_is_honoured_and_numbers_still_never_break(monkeypatch) -> None:
    doc = results.read(GOLDEN / "tiny_partial.json")
    wide = _piped_table(doc, monkeypatch, columns="300")  # COLUMNS wider than needed: a ceiling, not a width
    assert max(len(line) for line in wide.splitlines()) < 200
    narrow = _piped_table(doc, monkeypatch, columns="60")  # too narrow: numbers and headers still whole
    for word in ("step (95% CI)", "samples/s", "48.1 ms (31.6–60 ms)", "366.8 MiB", "torch-compile"):
        assert word in narrow, (word, narrow)


def test_make_console_streams_and_width(monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert make_console(file=io.StringIO()).width == NO_TTY_WIDTH
    assert make_console(stderr=True).stderr
    monkeypatch.setenv("COLUMNS", "123")
    assert make_console(file=io.StringIO()).width == 123
    c = Console(file=io.StringIO())
    assert fit(c) is c  # COLUMNS set: the caller's console as it is


def test_loss_column_names_what_it_shows() -> None:
    doc = results.read(GOLDEN / "tiny_all.json")
    cells = [c for c in doc["cells"] if c["workload"] == "tinymlp"]
    head, values, caption = loss_column(cells)
    k = cells[0]["parity"]["k"]
    assert head == f"loss @{k}" and f"after {k} steps" in caption
    assert values[0] == f"{cells[0]['parity']['kstep_loss']:.4f}"
    no_parity = [dict(copy.deepcopy(c), parity=None) for c in cells]
    head, values, caption = loss_column(no_parity)
    assert head == "last loss" and "own number" in caption and values[0] == f"{cells[0]['final_loss']:.4f}"


def test_compare_table_fits_its_content_in_a_pipe(cli, tmp_path, monkeypatch) -> None:
    from test_compare import cell, doc, write

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    long = "a-rather-long-workload-name-" * 3
    base = write(tmp_path, "b.json", doc([cell(long, seed=1, cv=0.5, n=10)]))
    cur = write(tmp_path, "c.json", doc([cell(long, seed=2, cv=0.5, n=10)]))
    r = invoke(cli, "compare", base, cur)
    assert r.exit_code == 0, r.output
    assert f"{long}/fake/cpu" in r.output and "inconclusive" in r.output


# ---------------------------------------------------------------- vocabulary

def test_env_format(cli) -> None:
    r = invoke(cli, "env", "--format", "json")
    assert r.exit_code == 0 and "cpu" in json.loads(r.output)
    r = invoke(cli, "env", "--json")  # a documented alias of --format json: same output, no warning
    assert r.exit_code == 0 and "cpu" in json.loads(r.stdout) and r.stderr == ""
    assert invoke(cli, "env", "--format", "yaml").exit_code == 2
    r = invoke(cli, "env")
    assert r.exit_code == 0 and "python" in r.output


def test_help_has_readable_placeholders(cli) -> None:
    for cmd in ("report", "env", "export", "compare"):
        r = invoke(cli, cmd, "--help")
        assert r.exit_code == 0
        for bad in ("<str>", "<float range>", "<list[str]>", "{RESULTS...}"):
            assert bad not in r.output, (cmd, bad, r.output)


def test_report_out_dir_and_deprecated_out(cli, tmp_path) -> None:
    src = str(GOLDEN / "tiny_partial.json")
    r = invoke(cli, "report", src, "--no-plots", "--out-dir", str(tmp_path / "a"))
    assert r.exit_code == 0 and (tmp_path / "a" / "report.md").exists()
    r = invoke(cli, "report", src, "--no-plots", "-o", str(tmp_path / "b"))
    assert r.exit_code == 0 and (tmp_path / "b" / "report.md").exists() and "deprecated" in r.output


def test_report_reference_must_have_run(cli, tmp_path) -> None:
    src = str(GOLDEN / "tiny_all.json")
    r = invoke(cli, "report", src, "--no-plots", "--out-dir", str(tmp_path / "x"), "--reference", "nosuch")
    assert r.exit_code == 2 and "nosuch" in r.output and "tf-graph" in r.output
    r = invoke(cli, "report", src, "--no-plots", "--out-dir", str(tmp_path / "y"), "--reference", "tf-graph")
    assert r.exit_code == 0
    assert "| tf-graph | " in (tmp_path / "y" / "report.md").read_text(encoding="utf-8")


def test_default_reference_without_torch_is_a_runner_that_ran(tmp_path) -> None:
    from fwbench.report.write import pick_reference

    d = results.read(GOLDEN / "tiny_all.json")
    d["cells"] = [c for c in d["cells"] if c["runner"] != "torch"]
    assert pick_reference([("a", d)], None) == d["cells"][0]["runner"]


# ---------------------------------------------------------------- several machines

def test_report_from_two_machines_keeps_them_apart(cli, tmp_path) -> None:
    a = json.loads((GOLDEN / "tiny_partial.json").read_text(encoding="utf-8"))
    b = copy.deepcopy(a)
    b["environment"]["hostname"], b["environment"]["cpu"] = "other-host", "Other CPU 9000"
    b["run_id"] = "other"
    for c in b["cells"]:
        if c.get("summary"):
            c["summary"] = {k: (v * 10 if isinstance(v, float) else v) for k, v in c["summary"].items()}
            c["step_s"] = [v * 10 for v in c["step_s"]]
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a), encoding="utf-8")
    pb.write_text(json.dumps(b), encoding="utf-8")
    r = invoke(cli, "report", str(pa), str(pb), "--no-plots", "--out-dir", str(tmp_path / "rep"))
    assert r.exit_code == 0, r.output
    assert "2 different machines" in r.output  # on stderr as well as in the report
    text = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "WARNING: these results come from 2 different machines" in text
    titles = [line for line in text.splitlines() if line.startswith("### tinymlp")]
    assert len(titles) == 2 and "Other CPU 9000" in titles[1]
    # within each machine torch is its own reference, never a cross-machine 10× or 0.10×
    speedups = [line.split(" | ")[4] for line in text.splitlines() if line.startswith("| torch \\[")]
    assert speedups == ["ref", "ref"]
    # the summary keeps them apart too: one block per machine, each with its own fastest runner
    blocks = [line for line in text.split("## Environment")[0].splitlines() if line.startswith("**tinymlp — cpu, ")]
    assert len(blocks) == 2 and "Other CPU 9000" in blocks[1]
