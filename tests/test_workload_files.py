"""Finding and reading workload files (issues 12 and 13): special files and sizes, one rule for names,
search order and shadowing, where `list` says each workload comes from, and repeated names in one run."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fwbench import limits, workload
from fwbench.cli.list_cmd import workload_rows
from fwbench.errors import UsageError, WorkloadError
from fwbench.workload import check_unique_names, discover, load_file, load_workload
from tests.conftest import REPO, TINY_MLP, invoke


def tiny(name: str | None, batch: int = 4) -> str:
    text = TINY_MLP.replace("batch_size = 4", f"batch_size = {batch}")
    return text.replace('name = "tinymlp"', f'name = "{name}"' if name is not None else "")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test in its own working directory, with no $FWBENCH_WORKLOADS and fresh shadowing notes."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FWBENCH_WORKLOADS", raising=False)
    monkeypatch.setattr(workload, "_ANNOUNCED", set())


# ------------------------------------------------------------------------------ special files and sizes
def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


SPECIAL = {
    "fifo": (lambda d: _fifo(d / "x.toml"), "a FIFO"),
    "dev-zero": (lambda d: (d / "x.toml").symlink_to("/dev/zero") or d / "x.toml", "a character device"),
    "dev-null": (lambda d: (d / "x.toml").symlink_to("/dev/null") or d / "x.toml", "a character device"),
    "directory": (lambda d: (d / "x.toml").mkdir() or d / "x.toml", "a directory"),
    "dangling": (lambda d: (d / "x.toml").symlink_to(d / "absent") or d / "x.toml", "cannot read"),
}


@pytest.mark.parametrize("case", sorted(SPECIAL))
def test_special_files_are_refused_before_they_are_read(tmp_path, case):
    make, words = SPECIAL[case]
    path = make(tmp_path)
    with pytest.raises(WorkloadError, match=words) as info:
        load_file(path)
    assert str(info.value).startswith(str(path))


def test_a_fifo_by_path_or_in_the_search_folder_never_hangs_the_cli(tmp_path, monkeypatch):
    """For real, in a subprocess with a deadline: `-w fifo.toml`, `-w NAME` and `list` all return."""
    d = tmp_path / "wl"
    d.mkdir()
    _fifo(d / "pipe.toml")
    (d / "good.toml").write_text(tiny("good"))
    env = {**os.environ, "FWBENCH_WORKLOADS": str(d), "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    for args in (["run", "-r", "fake", "-w", str(d / "pipe.toml")], ["run", "-r", "fake", "-w", "pipe"], ["list"]):
        proc = subprocess.run([sys.executable, "-m", "fwbench", *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        if args[0] == "run":
            assert proc.returncode == 2 and "a FIFO, not a regular file" in proc.stderr, proc.stderr
        else:
            assert proc.returncode == 0, proc.stderr
            pipe = next(line for line in proc.stdout.splitlines() if "│ pipe " in line)
            assert "invalid" in pipe and "FIFO" in pipe
            assert "good" in proc.stdout


@pytest.mark.parametrize("extra", [1, 10_000])
def test_files_over_the_size_limit_are_refused(tmp_path, extra):
    path = tmp_path / "big.toml"
    path.write_bytes(tiny("big").encode() + b"#" * (limits.MAX_WORKLOAD_FILE_BYTES + extra))
    with pytest.raises(WorkloadError, match="at most 1,048,576 bytes"):
        load_file(path)


def test_a_file_at_the_size_limit_is_read(tmp_path):
    body = tiny("edge").encode()
    path = tmp_path / "edge.toml"
    path.write_bytes(body + b"#" * (limits.MAX_WORKLOAD_FILE_BYTES - len(body)))
    assert load_file(path).name == "edge"


def test_an_unbounded_regular_file_is_cut_at_the_limit(monkeypatch, tmp_path):
    """A 'regular' file that never ends (as some /proc files are) is read only to limit + 1 bytes."""
    monkeypatch.setattr(limits, "MAX_WORKLOAD_FILE_BYTES", 100)
    path = tmp_path / "long.toml"
    path.write_bytes(b"#" * 5000)
    with pytest.raises(WorkloadError, match="at most 100 bytes"):
        load_file(path)


# ------------------------------------------------------------------------------------------ the name rule
def test_a_files_name_defaults_to_its_stem(tmp_path):
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "plain.toml").write_text(tiny(None))
    assert load_workload("plain").name == "plain"
    assert load_workload("./workloads/plain.toml").name == "plain"


def test_a_file_found_by_name_must_carry_that_name(tmp_path, cli):
    """workloads/my.toml with name = "tiny": neither `my` nor `tiny` runs, and `list` says why."""
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "my.toml").write_text(tiny("tiny"))
    with pytest.raises(WorkloadError, match=r"name: is 'tiny', but a workload found by name is named after its "
                                            r"file \(my.toml\): write name = 'my'"):
        load_workload("my")
    with pytest.raises(WorkloadError, match="unknown workload 'tiny'"):
        load_workload("tiny")
    rows = {r[0]: r for r in workload_rows(discover())}
    assert rows["my"][1] == "./workloads/my.toml" and rows["my"][-1] is True and "named after its file" in rows["my"][6]
    res = invoke(cli, "run", "-r", "fake", "-w", "my")
    assert res.exit_code == 2 and "named after its file" in res.output


def test_a_file_given_by_path_is_named_by_its_name_key_in_listing_and_cells(tmp_path, cli):
    (tmp_path / "my.toml").write_text(tiny("tiny"))
    assert load_workload("./my.toml").name == "tiny"
    out = tmp_path / "run.json"
    res = invoke(cli, "run", "-r", "fake", "-w", "./my.toml", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert '"tiny/fake/cpu/0"' in out.read_text()


def test_a_plugin_is_named_by_its_entry_point(monkeypatch):
    from importlib.metadata import EntryPoint

    class FakeEP(EntryPoint):
        def load(self):  # noqa: D102 - the plugin's callable returns a workload mapping
            import tomllib

            return lambda: tomllib.loads(tiny(self.value.split(":")[1]))

    good, wrong = FakeEP("plug", "m:plug", "fwbench.workloads"), FakeEP("other", "m:nope", "fwbench.workloads")
    monkeypatch.setattr(workload, "plugin_workloads", lambda: {"plug": good, "other": wrong})
    assert load_workload("plug").name == "plug"
    with pytest.raises(WorkloadError, match="entry point is named 'other'"):
        load_workload("other")
    rows = {r[0]: r for r in workload_rows(discover())}
    assert rows["plug"][1] == "plugin m:plug" and rows["plug"][5] == "plugin"


# ----------------------------------------------------------------------------- search order and shadowing
def test_search_order_env_then_local_then_bundled_and_shadowing_is_announced_once(tmp_path, monkeypatch, capsys):
    env_dir, local = tmp_path / "env", tmp_path / "workloads"
    env_dir.mkdir()
    local.mkdir()
    (local / "cnn.toml").write_text(tiny("cnn", batch=3))
    (local / "mlp.toml").write_text(tiny("mlp", batch=5))
    (env_dir / "mlp.toml").write_text(tiny("mlp", batch=7))
    monkeypatch.setenv("FWBENCH_WORKLOADS", str(env_dir))

    found = discover()
    assert found["cnn"].where == "./workloads/cnn.toml" and [s.where for s in found["cnn"].shadows] == ["bundled"]
    assert found["mlp"].where == f"$FWBENCH_WORKLOADS: {env_dir / 'mlp.toml'}"
    assert [s.where for s in found["mlp"].shadows] == ["./workloads/mlp.toml", "bundled"]
    assert found["digits"].where == "bundled" and not found["digits"].shadows

    assert load_workload("cnn").batch_size == 3 and load_workload("mlp").batch_size == 7
    assert load_workload("cnn").batch_size == 3
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: workload 'cnn' is ./workloads/cnn.toml, which shadows bundled",
                   f"warning: workload 'mlp' is $FWBENCH_WORKLOADS: {env_dir / 'mlp.toml'}, which shadows "
                   "./workloads/mlp.toml, bundled"]
    load_workload("digits")
    assert capsys.readouterr().err == ""

    rows = {r[0]: r for r in workload_rows(found)}
    assert rows["cnn"][1] == "./workloads/cnn.toml (shadows bundled)" and rows["cnn"][3] == "3"
    assert rows["digits"][1] == "bundled"


def test_list_shows_origin_and_shadowing_through_the_cli(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "cnn.toml").write_text(tiny("cnn"))
    res = invoke(cli, "list")
    assert res.exit_code == 0, res.output
    assert "shadows bundled" in res.output and "./workloads/cnn.toml" in res.output
    assert "│ mlp" in res.output and "bundled" in res.output


def test_list_makes_hostile_names_and_descriptions_inert(tmp_path, monkeypatch):
    """A file name with an escape sequence or rich markup is shown escaped, not interpreted."""
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "\x1b[2Jx.toml").write_text(tiny(None))
    (tmp_path / "workloads" / "[red]y.toml").write_text(tiny(None))
    rows = {r[0]: r for r in workload_rows(discover())}
    assert rows["\x1b[2Jx"][-1] is True and "printable" in rows["\x1b[2Jx"][6]
    assert rows["[red]y"][-1] is False
    from rich.console import Console

    from fwbench.cli.list_cmd import list_all

    console = Console(record=True, width=200, force_terminal=False)
    monkeypatch.setattr("fwbench.report.terminal.make_console", lambda *a, **k: console)
    list_all()
    text = console.export_text()
    assert "\x1b" not in text and "\\x1b[2Jx" in text and "[red]y" in text


# ----------------------------------------------------------------------------- repeated names in one run
def test_two_workloads_with_one_name_are_refused(tmp_path):
    other = tmp_path / "other.toml"
    other.write_text(tiny("mlp", batch=8))
    mlp, imposter = load_workload("mlp"), load_workload(str(other))
    with pytest.raises(UsageError) as info:
        check_unique_names([mlp, imposter])
    assert str(info.value) == f"two workloads are named 'mlp' (bundled mlp and {other}); a run needs distinct names"
    with pytest.raises(UsageError, match=r"workload 'mlp' is given twice \(bundled mlp\)"):
        check_unique_names([mlp, load_workload("mlp")])
    check_unique_names([mlp, load_workload("cnn"), dataclasses.replace(imposter, name="mlp8")])  # distinct: fine
