"""Build a :class:`~fwbench.report.model.Report` from results documents (pure: no files, no plots)."""

from __future__ import annotations

from typing import Any

from fwbench.report.context import build_context
from fwbench.report.corpus import Corpus, source
from fwbench.report.labels import LANGS, phrase
from fwbench.report.model import ProbeRow, Report
from fwbench.report.perf import noisy_note, perf_tables, reason
from fwbench.report.scenarios import scenario, scenario_tables
from fwbench.report.seed import describe_probe, seed_tables
from fwbench.report.combined import combine
from fwbench.report.summary import summarise
from fwbench.report.utilisation import calibration_notes, utilisation_rows


def build_report(docs: list[tuple[str, dict[str, Any]]], reference: str = "torch", lang: str = "en") -> Report:
    """The report of ``docs`` (``(file label, results document)`` pairs, already checked)."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}")
    corpus = Corpus(docs)
    notes = [phrase(lang, "quick")] if corpus.quick() else []
    where = machines(docs)
    if len(set(where.values())) > 1:
        notes.append(machines_warning(where, lang))
    busy = noisy_note(corpus, lang)
    if busy:
        notes.append(busy)
    machine_of = where if len(set(where.values())) > 1 else None
    return Report(lang=lang, reference=reference, environment=[environment_line(l, d) for l, d in docs],
                  notes=notes, parity=parity_lines(docs, lang),
                  performance=perf_tables(corpus, reference, lang, machine_of),
                  seed_tables=seed_tables(corpus, lang), probes=probe_rows(corpus, lang),
                  utilisation=utilisation_rows(corpus), utilisation_notes=calibration_notes(corpus, lang),
                  summary=summarise(combine(timed(corpus), machine_of)),
                  context=build_context(docs, [r.data for r in corpus.cells], lang),
                  scenarios=scenario_tables(corpus, lang))


def timed(corpus: Corpus) -> list:
    """The cells that time steps or requests: cold-start cells (one first result per process, no ``step_s``)
    have their own table and no place in the summary."""
    return [r for r in corpus.cells if scenario(r) != "cold-start"]


def machine(doc: dict[str, Any]) -> str:
    """The machine a results document was measured on: host name, CPU model and GPU models."""
    env = doc.get("environment") or {}
    gpus = ", ".join(str(g.get("name", "?")) for g in env.get("gpus") or [] if isinstance(g, dict))
    return f"{env.get('hostname') or '?'} ({env.get('cpu') or '?'}" + (f"; {gpus}" if gpus else "") + ")"


def machines(docs: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """File label -> :func:`machine`."""
    return {label: machine(doc) for label, doc in docs}


def machines_warning(where: dict[str, str], lang: str) -> str:
    """The loud line a report carries when its files come from more than one machine."""
    groups: dict[str, list[str]] = {}
    for label, m in where.items():
        groups.setdefault(m, []).append(label)
    listing = "; ".join(f"{m}: {', '.join(labels)}" for m, labels in groups.items())
    return phrase(lang, "machines", n=len(groups), machines=listing)


def environment_line(label: str, doc: dict[str, Any]) -> str:
    """One line: which run, where, with what."""
    env = doc.get("environment", {})
    versions = env.get("versions", {})
    fw = ", ".join(f"{k} {versions[k]}" for k in ("torch", "tensorflow", "keras", "jax", "onnxruntime")
                   if k in versions)
    gpus = "; ".join(g.get("name", "?") for g in env.get("gpus") or []) or "none"
    git = f" (git {env['git_commit']})" if env.get("git_commit") else ""
    return (f"{label}: run {doc['run_id']}, {doc.get('created', '?')}; fwbench {env.get('fwbench', '?')}{git}; "
            f"Python {env.get('python', '?')}; {env.get('os', '?')}; CPU {env.get('cpu', '?')}, "
            f"{env.get('cores', '?')} cores, {env.get('threads', '?')} threads; GPU: {gpus}; {fw}")


def parity_lines(docs: list[tuple[str, dict[str, Any]]], lang: str) -> list[str]:
    out = []
    for label, doc in docs:
        p = doc.get("parity") or {}
        if p.get("mismatches"):
            text = phrase(lang, "parity_bad", cells=", ".join(p["mismatches"]))
            details = [f"{c['id']}: {(c.get('parity') or {}).get('detail')}" for c in doc["cells"]
                       if (c.get("parity") or {}).get("status") == "mismatch"]
            text += " " + "; ".join(details)
        elif p.get("groups"):
            text = phrase(lang, "parity_ok", ref=p.get("reference"))
        else:
            text = phrase(lang, "parity_none")
        worst: dict[tuple[str, str], float] = {}  # one figure per (workload, device): the largest over repeats
        for g in p.get("groups") or []:
            if g.get("bn_max_abs_diff") is not None:
                key = (g["workload"], g["device"])
                worst[key] = max(worst.get(key, 0.0), g["bn_max_abs_diff"])
        bn = [f"{w} ({d}) {x:.2g}" for (w, d), x in worst.items()]
        if bn:
            text += " " + phrase(lang, "parity_bn", groups=", ".join(bn))
        out.append(f"{label}#parity: {text}")
    return out


def probe_rows(corpus: Corpus, lang: str) -> list[ProbeRow]:
    rows = []
    for rec in corpus.probes:
        text = describe_probe(rec, lang)[0] if rec.ok else reason(rec)
        rows.append(ProbeRow(rec["probe"], rec["runner"], rec["status"], text, source(rec)))
    return rows
