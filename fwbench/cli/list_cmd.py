"""``fwbench list``: workloads, runners (installed? version), devices found and capability probes; ``--json``
gives the same as one JSON object on stdout."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

AsJson = Annotated[bool, typer.Option(
    "--json", help="Print everything as one JSON object on stdout: workloads, runners, devices, probes.")]


def register(app: typer.Typer) -> None:
    from fwbench.cli.common import guarded

    app.command("list")(guarded(list_all))


def list_all(as_json: AsJson = False) -> None:
    """List workloads, runners (installed or not, with versions), the devices this machine has, and the
    capability probes (which runners they apply to, what they check)."""
    from rich.markup import escape
    from rich.table import Table

    from fwbench.report.terminal import make_console, print_table, text
    from fwbench.workload import discover, shown_path

    found = discover()
    if as_json:
        print(json.dumps(listing(found), indent=2))
        return
    console = make_console()
    wt = Table(title="Workloads")
    for col in ("name", "from", "mode", "batch", "params", "data", "description / problem"):
        wt.add_column(col)
    for row in workload_rows(found):
        *cells, desc, bad = row
        # user text, made inert: one printable line (control characters escaped), no rich markup
        wt.add_row(*(escape(shown_path(c)) for c in cells),
                   ("[red]invalid:[/] " if bad else "") + escape(shown_path(desc)))
    print_table(console, wt)

    rt = Table(title="Runners")
    for col in ("runner", "family", "mode", "installed", "versions", "devices", "scenarios"):
        rt.add_column(col)
    for r in runner_entries():
        versions = ", ".join(f"{k} {v}" for k, v in r["versions"].items()) or "-"
        installed = "yes" if r["installed"] else f"no ({', '.join(r['missing'])} missing; pip install {r['install']})"
        scenarios = "all" if r["trains"] and len(r["scenarios"]) == 4 else ", ".join(r["scenarios"])
        if not r["trains"]:
            scenarios += " (cannot train)"
        rt.add_row(r["name"] + (" (test double)" if r["test_double"] else ""), r["family"], r["mode"], installed,
                   versions, ", ".join(r["devices"]), scenarios)
    print_table(console, rt)

    dev = device_entries()
    dt = Table(title="Devices")
    dt.add_column("device")
    dt.add_column("found")
    dt.add_row("cpu", text(f"yes: {dev['cpu']['model']}, {dev['cpu']['cores']} cores"))
    gpus = dev["cuda"]["gpus"]
    dt.add_row("cuda", text("yes: " + "; ".join(g["name"] for g in gpus) if gpus else "no (nvidia-smi found no GPU)"))
    dt.add_row("tpu", "yes" if dev["tpu"]["found"] else "no")
    print_table(console, dt)

    pt = Table(title="Probes (fwbench probe, run --probes)")
    for col in ("probe", "kind", "runners", "what it checks"):
        pt.add_column(col)
    for p in probe_entries():
        checks = p["description"] + (" (token-id workloads only)" if p["token_workloads_only"] else "")
        if p["missing"]:
            checks += f" [needs {', '.join(p['missing'])}: not installed]"
        pt.add_row(p["name"], p["kind"], ", ".join(p["runners"]), text(checks))
    print_table(console, pt)


def listing(found: dict[str, Any]) -> dict[str, Any]:
    """What ``fwbench list --json`` prints: workloads, runners, devices and probes."""
    return {"workloads": workload_entries(found), "runners": runner_entries(), "devices": device_entries(),
            "probes": probe_entries()}


def workload_entries(found: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per workload name: where it comes from (and what it shadows), and either its mode, batch
    size, trainable parameters, data and description, or (``valid`` false) the reason it cannot be used.
    Files are read safely (a FIFO or a device is an entry, not a hang); plugins are not imported here."""
    from fwbench.errors import WorkloadError
    from fwbench.workload import PLUGIN, load_file
    from fwbench.workload_spec import parameter_count

    entries = []
    for name, f in sorted(found.items()):
        entry: dict[str, Any] = {"name": name, "from": f.where, "shadows": f.shadow_note() if f.shadows else None,
                                 "plugin": f.origin == PLUGIN, "valid": True, "mode": None, "batch_size": None,
                                 "parameters": None, "data": None, "description": None, "problem": None}
        if f.origin != PLUGIN:
            try:
                spec = load_file(f.path, expect_name=name)
            except WorkloadError as exc:
                entry.update(valid=False, problem=f"{exc.field + ': ' if exc.field else ''}{exc.message}")
            else:
                entry.update(mode=spec.mode, batch_size=spec.batch_size, parameters=parameter_count(spec),
                             data=spec.data, description=spec.description)
        entries.append(entry)
    return entries


def workload_rows(found: dict[str, Any]) -> list[tuple[str, str, str, str, str, str, str, bool]]:
    """One row per workload name: name, where from (and what it shadows), mode, batch, trainable parameters,
    data, description or the reason it cannot be used, and whether it is invalid."""
    rows = []
    for e in workload_entries(found):
        where = e["from"] + (f" ({e['shadows']})" if e["shadows"] else "")
        if e["plugin"]:
            rows.append((e["name"], where, "?", "?", "?", "plugin", "(Python plugin, entry point fwbench.workloads)",
                         False))
        elif not e["valid"]:
            rows.append((e["name"], where, "-", "-", "-", "-", e["problem"], True))
        else:
            rows.append((e["name"], where, e["mode"], str(e["batch_size"]), f"{e['parameters']:,}", e["data"],
                         e["description"], False))
    return rows


def runner_entries() -> list[dict[str, Any]]:
    """Every registered runner: family, mode, framework, installed (else the missing modules), versions, devices."""
    from fwbench.pipeline import install_hint
    from fwbench.runners.registry import RUNNERS

    out = []
    for info in RUNNERS.values():
        missing = info.missing()
        out.append({"name": info.name, "family": info.family, "mode": info.mode, "framework": info.framework,
                    "installed": not missing, "missing": missing, "install": install_hint(missing) if missing else None,
                    "versions": info.versions(), "devices": list(info.devices), "scenarios": list(info.scenarios),
                    "trains": info.trains, "test_double": info.hidden})
    return out


def device_entries() -> dict[str, Any]:
    """The device kinds this machine has: the CPU (model, usable cores), NVIDIA GPUs, a TPU."""
    from fwbench import env as envmod
    from fwbench.config import available_cores

    gpus = envmod.gpus()
    return {"cpu": {"found": True, "model": envmod.cpu_model(), "cores": available_cores()},
            "cuda": {"found": bool(gpus), "gpus": gpus}, "tpu": {"found": envmod.tpu_present()}}


def probe_entries() -> list[dict[str, Any]]:
    """Every capability probe: kind, what it checks, the runners it applies to (registered ones), extra modules."""
    from fwbench.probes.catalog import PROBES
    from fwbench.runners.registry import RUNNERS

    return [{"name": p.name, "kind": p.kind, "description": p.description,
             "runners": [r for r in p.runners if r in RUNNERS], "token_workloads_only": p.tokens_only,
             "needs": list(p.modules), "missing": p.missing()} for p in PROBES.values()]
