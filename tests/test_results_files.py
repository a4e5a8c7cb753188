"""Results-file safety: the run lock, symlinks, special files, folders, the umask, the fallback save."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, invoke
from fwbench import jsonio, results
from fwbench.errors import FwbenchError, ResultsError, UsageError


def small_doc(n: int = 1) -> dict:
    doc = results.new_document({"runners": ["fake"]}, {"cpu": "x"})
    for i in range(n):
        doc["cells"].append({"id": f"w/fake/cpu/{i}", "workload": "w", "runner": "fake", "device": "cpu",
                             "repeat": i, "status": "ok", "step_s": [0.1]})
    return doc


# --------------------------------------------------------------------------------------------- the lock
def test_a_second_writer_in_another_process_fails_at_once_naming_the_pid(tmp_path):
    out = tmp_path / "run.json"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom fwbench import results\n"
                               "with results.lock(sys.argv[1]):\n print('locked', flush=True)\n sys.stdin.read()",
         str(out)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResultsError) as info:
            with results.lock(out):
                pass
        assert f"is being written by another fwbench run (pid {holder.pid})" in str(info.value)
        assert str(info.value).startswith(str(out)) and "\n" not in str(info.value)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with results.lock(out):  # released when the holder ended
        pass


def test_two_writers_in_one_process_and_through_a_symlink_share_one_lock(tmp_path):
    out = tmp_path / "run-7.json"
    (tmp_path / "latest.json").symlink_to("run-7.json")
    with results.lock(out) as sidecar:
        assert sidecar.exists() and sidecar.read_text().strip() == str(os.getpid())
        for other in (out, tmp_path / "latest.json"):
            with pytest.raises(ResultsError, match=f"another fwbench run \\(pid {os.getpid()}\\)"):
                with results.lock(other):
                    pass
    assert not sidecar.exists()  # no lock file is left beside the results
    with results.lock(tmp_path / "latest.json"):
        pass


def test_the_lock_is_released_when_the_run_raises(tmp_path):
    with pytest.raises(KeyError):
        with results.lock(tmp_path / "run.json"):
            raise KeyError("boom")
    with results.lock(tmp_path / "run.json"):
        pass


def test_a_lock_in_an_unwritable_place_is_one_line(tmp_path):
    with pytest.raises(ResultsError, match="cannot lock"):
        with results.lock("/proc/fwbench-no/run.json"):
            pass


# ------------------------------------------------------------------------------------------- symlinks
@pytest.mark.parametrize("how", ["relative", "absolute", "other folder", "chain"])
def test_writes_follow_a_symlink_and_keep_it(tmp_path, how):
    target_dir = tmp_path / ("elsewhere" if how == "other folder" else ".")
    target_dir.mkdir(exist_ok=True)
    target = target_dir / "run-7.json"
    results.save(target, small_doc(1))
    link = tmp_path / "latest.json"
    if how == "relative":
        link.symlink_to("run-7.json")
    elif how == "chain":
        (tmp_path / "mid.json").symlink_to(target)
        link.symlink_to("mid.json")
    else:
        link.symlink_to(target)
    results.save_or_fallback(link, small_doc(2))
    assert link.is_symlink() and len(results.read(target)["cells"]) == 2
    assert not list(tmp_path.glob(".*.tmp")) and not list(target_dir.glob(".*.tmp"))


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "latest.json"
    link.symlink_to("run-8.json")
    results.check_target(link)
    results.save(link, small_doc())
    assert link.is_symlink() and (tmp_path / "run-8.json").is_file()


# ------------------------------------------------------------------------------ special files, folders
def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "/dev/null":
        return Path("/dev/null")
    if kind == "link to /dev/null":
        (tmp_path / "null.json").symlink_to("/dev/null")
        return tmp_path / "null.json"
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo.json")
        return tmp_path / "fifo.json"
    if kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(tmp_path / "sock.json"))
        return tmp_path / "sock.json"
    if kind == "directory":
        (tmp_path / "dir.json").mkdir()
        return tmp_path / "dir.json"
    raise AssertionError(kind)


SPECIAL = {"/dev/null": "character device", "link to /dev/null": "character device", "fifo": "FIFO",
           "socket": "socket", "directory": "directory"}


@pytest.mark.parametrize("kind", sorted(SPECIAL))
def test_check_target_refuses_what_is_not_a_regular_file(tmp_path, kind):
    path = _special(tmp_path, kind)
    with pytest.raises(ResultsError) as info:
        results.check_target(path)
    assert SPECIAL[kind] in str(info.value) and "not a regular file" in str(info.value)


@pytest.mark.parametrize("kind", ["fifo", "socket", "directory", "own char device"])
def test_a_write_onto_a_special_file_never_replaces_it(tmp_path, kind):
    if kind == "own char device":
        if os.geteuid() != 0:
            pytest.skip("creating a device node needs root")
        path = tmp_path / "null.json"
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    else:
        path = _special(tmp_path, kind)
    before = os.lstat(path)
    with pytest.raises(OSError, match="not a regular file"):
        jsonio.write_json_atomic(path, {"a": 1})
    after = os.lstat(path)
    assert (after.st_ino, stat.S_IFMT(after.st_mode)) == (before.st_ino, stat.S_IFMT(before.st_mode))
    assert not list(tmp_path.glob(".*.tmp"))


def test_stdout_as_a_target_is_refused(tmp_path):
    # /dev/stdout is a link to whatever fd 1 is: a pipe here
    proc = subprocess.run([sys.executable, "-c", "from fwbench import results\nresults.check_target('/dev/stdout')"],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 1 and "ResultsError" in proc.stderr and "not a regular file" in proc.stderr


@pytest.mark.parametrize("where", ["/proc/fwbench-test/run.json", "under a file"])
def test_check_target_refuses_a_folder_that_cannot_be_made(tmp_path, where):
    if where == "under a file":
        (tmp_path / "file").write_text("x")
        where = str(tmp_path / "file" / "sub" / "run.json")
    with pytest.raises(UsageError, match=f"cannot write results to {where}: "):
        results.check_target(where)


def test_check_target_creates_a_missing_folder_and_accepts_a_regular_file(tmp_path):
    results.check_target(tmp_path / "a" / "b" / "run.json")
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())
    results.save(tmp_path / "run.json", small_doc())
    results.check_target(tmp_path / "run.json")


def test_run_onto_dev_null_exits_2_before_any_work(cli, workload_dir, monkeypatch):
    monkeypatch.setenv("FWBENCH_FAKE", "hang")  # a worker started by mistake would hang the test
    res = invoke(cli, "run", "-r", "fake", "-w", "tinymlp", "-o", "/dev/null")
    assert res.exit_code == 2, res.output
    assert "character device" in res.output and "Traceback" not in res.output
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


# -------------------------------------------------------------------------------------------- the umask
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_results_files_respect_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        assert jsonio.umask() == mask
        results.save(tmp_path / "run.json", small_doc())
        with results.lock(tmp_path / "other.json") as sidecar:
            assert stat.S_IMODE(os.stat(sidecar).st_mode) == mode
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "run.json").st_mode) == mode


def test_a_rewrite_keeps_the_mode_the_user_gave(tmp_path):
    path = tmp_path / "run.json"
    results.save(path, small_doc())
    path.chmod(0o640)
    results.save(path, small_doc(2))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


# ------------------------------------------------------------------------------------- the fallback save
def _unwritable(tmp_path: Path) -> Path:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    return tmp_path / "blocker" / "run.json"


def _no_home(monkeypatch):
    """HOME unset and the uid unknown to the password database: Path.home() raises."""
    import pwd

    monkeypatch.delenv("HOME", raising=False)

    def unknown(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", unknown)
    with pytest.raises((RuntimeError, KeyError)):
        Path.home()


def test_fallback_without_home_goes_to_tmpdir(tmp_path, monkeypatch):
    _no_home(monkeypatch)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    doc = small_doc(2)
    with pytest.raises(ResultsError, match="2 finished cell\\(s\\) were saved to") as info:
        results.save_or_fallback(_unwritable(tmp_path), doc)
    saved = results.fallback_path(doc, tmp)
    assert str(saved) in str(info.value) and len(results.read(saved)["cells"]) == 2


def test_fallback_without_home_nor_a_temp_folder_goes_to_the_current_folder(tmp_path, monkeypatch):
    _no_home(monkeypatch)
    monkeypatch.setenv("TMPDIR", str(_unwritable(tmp_path).parent / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(_unwritable(tmp_path).parent / "tmp"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    doc = small_doc(1)
    with pytest.raises(ResultsError, match="were saved to"):
        results.save_or_fallback(_unwritable(tmp_path), doc)
    assert len(results.read(results.fallback_path(doc, cwd))["cells"]) == 1


def test_fallback_that_finds_nowhere_says_the_cells_are_lost(tmp_path, monkeypatch):
    def fail(path, doc):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results, "write_json_atomic", fail)
    _no_home(monkeypatch)
    with pytest.raises(FwbenchError, match="the 1 finished cell\\(s\\) of this run are lost"):
        results.save_or_fallback(tmp_path / "run.json", small_doc())


def test_saved_files_are_strict_json_with_no_temp_files_left(tmp_path):
    results.save(tmp_path / "run.json", small_doc(3))
    json.loads((tmp_path / "run.json").read_text(), parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
