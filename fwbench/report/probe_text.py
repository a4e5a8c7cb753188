"""One line of text for a successful probe record, the findings fields it cites, and its key numbers (pure)."""

from __future__ import annotations

import re

from fwbench import units
from fwbench.report.corpus import Record
from fwbench.report.labels import phrase


def short(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# "AttributeError: ...", "torch._dynamo.exc.Unsupported: ...": a (dotted) class name, then a colon
_KIND = re.compile(r"^\s*(?:[A-Za-z_]\w*\.)*([A-Z]\w*):(?:\s|$)")


def error_kind(text: str, limit: int = 40) -> str:
    """What kind of failure ``text`` reports, in a few words: the exception's class name
    (``AttributeError``), else its first clause (``tf2onnx not installed``), at most ``limit`` characters."""
    m = _KIND.match(str(text))
    if m:
        return m.group(1)
    first = re.split(r"[:;(\n]|\. ", " ".join(str(text).split()), maxsplit=1)[0].strip()
    return short(first, limit) or "?"


def probe_detail(rec: Record) -> str:
    """The full message a probe line shortens (the error of a value that could not be read, a long
    shape-error message), for the report's appendix; empty when the line shows it whole."""
    f = rec.get("findings") or {}
    if rec["probe"] == "debug-value" and not f.get("concrete_value") and f.get("error"):
        return " ".join(str(f["error"]).split())
    if rec["probe"] == "shape-error" and len(" ".join(str(f.get("message", "")).split())) > SHAPE_MESSAGE:
        return " ".join(str(f["message"]).split())
    return ""


SHAPE_MESSAGE = 80  # characters of a shape-error message shown in a table cell


def describe_probe(rec: Record, lang: str) -> tuple[str, list[str], dict]:
    """One line for a successful probe record, the findings fields it cites, and its key numbers."""
    f = rec.get("findings") or {}
    probe, runner = rec["probe"], rec["runner"]
    if probe == "debug-value":
        if f.get("concrete_value"):
            how = f.get("how", "") + (phrase(lang, "graph_breaks", n=f["graph_breaks"]) if f.get("graph_breaks") else "")
            return (phrase(lang, "value_yes", runner=runner, how=how),
                    ["findings.concrete_value", "findings.how"], {f"{runner}:debug_value": True})
        return (phrase(lang, "value_no", runner=runner, error=error_kind(f.get("error") or "?")),
                ["findings.concrete_value", "findings.error"], {f"{runner}:debug_value": False})
    if probe == "shape-error":
        yn = {True: phrase(lang, "yes"), False: phrase(lang, "no")}
        return (phrase(lang, "shape_error", runner=runner, layer=yn[bool(f.get("names_layer"))],
                       shapes=yn[bool(f.get("names_shapes"))], message=short(f.get("message", ""), SHAPE_MESSAGE)),
                ["findings.names_layer", "findings.names_shapes", "findings.message"],
                {f"{runner}:names_layer": f.get("names_layer"), f"{runner}:names_shapes": f.get("names_shapes")})
    if probe == "shape-change":
        changed = (f.get("shapes") or [{}, {}])[1]
        return (phrase(lang, "retraces", runner=runner, batch=changed.get("batch"), n=changed.get("retraces"),
                       t=units.seconds(changed.get("first_call_s")), s=units.seconds(changed.get("steady_s"))),
                ["findings.shapes[1]"], {f"{runner}:retraces_on_new_shape": changed.get("retraces"),
                                         f"{runner}:new_shape_first_call_s": changed.get("first_call_s")})
    if probe == "seq-length":
        lengths = f.get("lengths") or []
        steady = units.seconds(lengths[-1].get("steady_s")) if lengths else "?"
        return (phrase(lang, "seq_retraces", runner=runner, lengths=" → ".join(str(l.get("length")) for l in lengths),
                       n=f.get("retraces_total"), firsts=" / ".join(units.seconds(l.get("first_call_s")) for l in lengths),
                       s=steady),
                ["findings.lengths", "findings.retraces_total"],
                {f"{runner}:retraces_on_new_length": f.get("retraces_total"),
                 **{f"{runner}:first_call_s@{l.get('length')}": l.get("first_call_s") for l in lengths}})
    if probe.startswith("export-"):
        name = f.get("format", probe)
        if not f.get("reproduces"):
            return (phrase(lang, "export_diff", name=name, diff=f.get("max_abs_diff", float("nan"))),
                    ["findings.max_abs_diff"], {f"{probe}:max_abs_diff": f.get("max_abs_diff"), f"{probe}:reproduces": False})
        via = f" ({f['runtime']})" if f.get("runtime") else ""
        return (phrase(lang, "export_ok", name=name, t=units.seconds(f.get("export_s")),
                       size=units.nbytes(f.get("artifact_bytes")), diff=f.get("max_abs_diff", 0.0), via=via),
                ["findings.export_s", "findings.artifact_bytes", "findings.max_abs_diff"],
                {f"{probe}:export_s": f.get("export_s"), f"{probe}:artifact_bytes": f.get("artifact_bytes"),
                 f"{probe}:max_abs_diff": f.get("max_abs_diff"), f"{probe}:reproduces": True})
    return (f"{probe} ({runner}): ok", ["status"], {})
