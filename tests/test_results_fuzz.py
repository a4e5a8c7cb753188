"""Fuzz the readers (`report`, `compare`, `export`) with mutated real results files: never a traceback.

Each example takes a real file (the committed golden runs), changes 1-3 places in it (a value replaced by
another JSON type, a huge integer, NaN or infinity, a deeply nested list, a hostile string; a key or item
deleted) and runs every reader on it through the CLI. Allowed outcomes: exit 0 or 1 (compare's verdict)
with output, or exit 2 with exactly one line. An exception escaping a command fails the test.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import invoke

GOLDEN = Path(__file__).parent / "golden"
BASES = ["tiny_partial.json", "v1_diverged.json", "ddp_cpu.json", "tiny_all.json"]
_DOCS = {name: json.loads((GOLDEN / name).read_text(encoding="utf-8")) for name in BASES}


def _paths(x: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(x, dict):
        for k, v in x.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x[:4]):  # a few items of each list are enough, and keep the space small
            out += _paths(v, prefix + (i,))
    return out


_PATHS = {name: _paths(doc) for name, doc in _DOCS.items()}


def _nest(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = [v]
    return v


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-5, max_value=5), st.sampled_from([10**30, -(10**400), 2**63]),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 0.5]),
    st.sampled_from(["", "x", "fast", "64", "[/red]", "=cmd()", "$x^2$", "a|b\nc", "ok", "nan", "\x1b[2J"]),
    st.just([]), st.just({}), st.just([1, "a", None]), st.just({"a": [1]}), st.sampled_from([_nest(50), _nest(400)]),
)


@st.composite
def mutated(draw) -> tuple[str, dict]:
    name = draw(st.sampled_from(BASES))
    doc = json.loads(json.dumps(_DOCS[name]))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_PATHS[name]))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            last = path[-1]
            if isinstance(parent, (dict, list)) and (last in parent if isinstance(parent, dict) else last < len(parent)):
                if draw(st.integers(0, 4)) == 0:
                    del parent[last]
                else:
                    parent[last] = draw(VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation changed the shape above this path
    return name, doc


def _check(res, what: str) -> None:
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(res.exception))
        raise AssertionError(f"{what}: exception escaped\n{tb}")
    assert "Traceback" not in res.output, f"{what}: {res.output}"
    assert res.exit_code in (0, 1, 2), f"{what}: exit {res.exit_code}: {res.output}"
    if res.exit_code == 2:
        lines = res.output.strip().splitlines()
        assert len(lines) == 1, f"{what}: exit 2 with {len(lines)} lines: {res.output[:2000]}"


@pytest.mark.slow
@settings(max_examples=int(os.environ.get("FWBENCH_FUZZ_EXAMPLES", "30")), deadline=None, derandomize=not os.environ.get("FWBENCH_FUZZ_EXAMPLES"),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutated())
def test_readers_never_raise_on_mutated_results_files(cli, tmp_path, case):
    name, doc = case
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc, allow_nan=True), encoding="utf-8")
    good = GOLDEN / name
    report_dir = tmp_path / "report"
    for args in (["export", str(bad)], ["export", str(bad), "--format", "csv"],
                 ["compare", str(good), str(bad)], ["compare", str(bad), str(good), "--format", "markdown"],
                 ["report", str(bad), "-o", str(report_dir), "--no-plots"]):
        _check(invoke(cli, *args), f"{name}: fwbench {' '.join(args)}")


@pytest.mark.parametrize("text", [
    '{"schema_version": 1, "run_id": "x", "config": {}, "environment": {}, "cells": [' + "[" * 50_000 + "]" * 50_000 + "]}",
    '{"schema_version": 2, "run_id": "x", "config": {}, "environment": {}, "cells": [], "parity": '
    + "9" * 5000 + "}",
])
def test_deep_nesting_and_huge_numbers_inside_a_document_are_one_line(cli, tmp_path, text):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    for args in (["export", str(bad)], ["compare", str(bad), str(bad)], ["report", str(bad), "-o", str(tmp_path / "r")]):
        res = invoke(cli, *args)
        _check(res, " ".join(args))
        assert res.exit_code == 2
