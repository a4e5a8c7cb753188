"""A workload's network as a graph: named nodes, their inputs, and blocks repeated with parameters.

Pure data handling, nothing is evaluated. :func:`expand` turns the TOML ``[[layers]]`` entries (and the
``[blocks]`` they use) into one flat, topologically ordered list of node tables, each with its final
``name`` and its ``inputs`` resolved to earlier names; :func:`check_graph` then proves that every input is
defined earlier (so there is no cycle), every node but the last feeds a later one, and the shapes fit at
every node, merges included. Both raise :class:`WorkloadError` naming the node.

The rules (``docs/workloads.md`` has the reference):

- a node reads the previous node unless it names ``inputs``; ``"input"`` is the network's input (inside a
  block: the block's input);
- a node without ``name`` is called ``#N`` (N its position in the expanded list); inside a block instance
  every name is prefixed with the instance's: ``s2.1/conv1``, or ``s2.1/#3`` for the block's unnamed layer 3;
- ``{ type = "block", block = "basic", repeat = 3, args = { filters = 32 } }`` inserts the block's layers
  3 times in a row, each instance reading the previous one's output; in a block's layers a value written
  ``"$filters"`` is replaced by the instance's ``args.filters`` (the whole value, never part of a string).
  An instance is named ``name`` (``name.k`` when repeated), or ``block.n`` (counting that block's instances).
  Blocks do not nest.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from fwbench.errors import WorkloadError
from fwbench.layers import Layer, output_shape

NETWORK_INPUT = "input"
MAX_NODES = 4096  # after expansion; ResNet-152 has about 500
MAX_INPUTS = 64
NAME_RE = re.compile(r"[A-Za-z0-9_#][A-Za-z0-9_#./-]{0,159}")
NAME_RULE = "1-160 letters, digits or _ # . / -, not starting with . / -"
BLOCK_KEYS = ("type", "block", "name", "inputs", "repeat", "args")
ARG_TYPES = (int, float, str, bool)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _key(k: Any) -> str:
    return k if isinstance(k, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,60}", k) else json.dumps(str(k)[:60])


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value) or value == NETWORK_INPUT:
        raise WorkloadError(f"{where}.name", f"must be {NAME_RULE} (and not {NETWORK_INPUT!r}), got {_shown(value)}")
    return value


def _input_names(value: Any, where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not 1 <= len(items) <= MAX_INPUTS \
            or not all(isinstance(v, str) for v in items):
        raise WorkloadError(f"{where}.inputs", f"must be a node name or an array of 1-{MAX_INPUTS} node names, "
                                               f"got {_shown(value)}")
    return list(items)


def _resolve(names: list[str], where: str, scope: dict[str, str], later: set[str], own: str | None) -> list[str]:
    """Map the names a node reads (in its scope) to full names of earlier nodes."""
    out = []
    for n in names:
        if n in scope:
            out.append(scope[n])
        elif n == own:
            raise WorkloadError(f"{where}.inputs", f"the node reads itself ({n!r}): a cycle")
        elif n in later:
            raise WorkloadError(f"{where}.inputs", f"{n!r} comes later: a node reads only earlier nodes "
                                                   "(no cycles); move it after its inputs")
        else:
            known = [k for k in scope if k != NETWORK_INPUT][-8:]
            raise WorkloadError(f"{where}.inputs", f"unknown node {_shown(n)}; earlier nodes here: "
                                                   f"{', '.join(known) or 'none'} (and {NETWORK_INPUT!r}); give a node a name to read it")
    return out


def _declared(entries: list[Any]) -> set[str]:
    return {e["name"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("name"), str)}


def _substitute(value: Any, args: Mapping[str, Any], used: set[str], where: str, instance: str) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        key = value[1:]
        if key not in args:
            raise WorkloadError(where, f"{_shown(value)} is not given: the instance {instance} has args "
                                       f"{{{', '.join(map(_key, args)) or ''}}}")
        used.add(key)
        return args[key]
    return value


class _Expander:
    def __init__(self, blocks: Any):
        if not isinstance(blocks, Mapping):
            raise WorkloadError("blocks", f"must be a table of blocks ([blocks.NAME] tables), got {type(blocks).__name__}")
        for bname, block in blocks.items():
            where = f"blocks.{_key(bname)}"
            if not isinstance(bname, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,59}", bname):
                raise WorkloadError(where, "a block's name is 1-60 letters, digits, _ or -, starting with a letter")
            if not isinstance(block, Mapping):
                raise WorkloadError(where, "must be a table with a layers array ([[blocks.NAME.layers]])")
            for k in block:
                if k not in ("layers", "description"):
                    raise WorkloadError(f"{where}.{_key(k)}", "unknown key; allowed: layers, description")
            if not isinstance(block.get("layers"), list) or not block["layers"]:
                raise WorkloadError(f"{where}.layers", "must be a non-empty array of tables")
        self.blocks = blocks
        self.nodes: list[tuple[str, dict[str, Any]]] = []
        self.instances: dict[str, int] = {}
        self.used_blocks: set[str] = set()
        self.names: set[str] = set()

    def add(self, where: str, raw: dict[str, Any], name: str, inputs: list[str]) -> str:
        if len(self.nodes) >= MAX_NODES:
            raise WorkloadError(where, f"the network expands to more than {MAX_NODES} nodes")
        full = name
        if full in self.names:
            raise WorkloadError(f"{where}.name", f"duplicate node name {full!r}")
        self.names.add(full)
        node = {k: v for k, v in raw.items() if k not in ("name", "inputs")}
        self.nodes.append((where, {**node, "name": full, "inputs": inputs}))
        return full

    def layers(self, entries: Any, where0: str, scope: dict[str, str], prev: str, prefix: str = "",
               args: Mapping[str, Any] | None = None, instance: str = "") -> str:
        """Expand ``entries`` in ``scope`` (local name -> full name) after node ``prev``; returns the last node."""
        later = _declared(entries)
        for j, raw in enumerate(entries):
            where = f"{where0}[{j}]"
            if not isinstance(raw, Mapping):
                raise WorkloadError(where, "must be a table such as { type = \"dense\", units = 64 }")
            if args is not None:
                used: set[str] = set()
                raw = {k: (v if k in ("name", "inputs") else _substitute(v, args, used, f"{where}.{_key(k)}", instance))
                       for k, v in raw.items()}
                self.used_args |= used
            if raw.get("type") == "block":
                if args is not None:
                    raise WorkloadError(f"{where}.type", "blocks do not nest: a block's layers are plain layers")
                prev = self.instance(where, raw, scope, later, prev)
                continue
            local = _name(raw["name"], where) if "name" in raw else None
            later.discard(local) if local else None
            reads = (_resolve(_input_names(raw["inputs"], where), where, scope, later, local)
                     if "inputs" in raw else [prev])
            full = self.add(where, raw, f"{prefix}{local if local is not None else f'#{j}'}"
                            if prefix else (local if local is not None else f"#{len(self.nodes)}"), reads)
            if local is not None:
                scope[local] = full
            prev = full
        return prev

    def instance(self, where: str, raw: Mapping[str, Any], scope: dict[str, str], later: set[str], prev: str) -> str:
        for k in raw:
            if k not in BLOCK_KEYS:
                raise WorkloadError(f"{where}.{_key(k)}", f"unknown key for a block instance; allowed: {', '.join(BLOCK_KEYS)}")
        bname = raw.get("block")
        if not isinstance(bname, str) or bname not in self.blocks:
            raise WorkloadError(f"{where}.block", f"unknown block {_shown(bname)}; defined: "
                                                  f"{', '.join(map(_key, self.blocks)) or 'none ([blocks.NAME])'}")
        repeat = raw.get("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= MAX_NODES:
            raise WorkloadError(f"{where}.repeat", f"must be an integer from 1 to {MAX_NODES}, got {_shown(repeat)}")
        body = self.blocks[bname]["layers"]
        self.used_blocks.add(bname)
        if len(self.nodes) + repeat * len(body) > MAX_NODES:
            raise WorkloadError(f"{where}.repeat", f"{repeat} x {len(body)} layers of block {bname!r} would expand "
                                                   f"the network past {MAX_NODES} nodes")
        args = raw.get("args", {})
        if not isinstance(args, Mapping) or not all(isinstance(v, ARG_TYPES) for v in args.values()):
            raise WorkloadError(f"{where}.args", "must be a table of numbers, text or booleans, "
                                                 "e.g. { filters = 32, strides = 2 }")
        name = _name(raw["name"], where) if "name" in raw else None
        if name:
            later.discard(name)
        if "inputs" in raw:
            reads = _resolve(_input_names(raw["inputs"], where), where, scope, later, name)
            if len(reads) != 1:
                raise WorkloadError(f"{where}.inputs", "a block instance reads one node")
            prev = reads[0]
        self.used_args: set[str] = set()
        for k in range(1, repeat + 1):
            if name is None:
                self.instances[bname] = self.instances.get(bname, 0) + 1
                label = f"{bname}.{self.instances[bname]}"
            else:
                label = f"{name}.{k}" if repeat > 1 else name
            inner = {NETWORK_INPUT: prev}
            prev = self.layers(body, f"blocks.{bname}.layers", inner, prev, f"{label}/", args, label)
        unused = sorted(set(args) - self.used_args)
        if unused:
            raise WorkloadError(f"{where}.args.{_key(unused[0])}", f"is not used by block {bname!r} "
                                                                  f"(no value \"${unused[0]}\" in its layers)")
        if name is not None:
            scope[name] = prev  # naming an instance names its output
        return prev


def expand(entries: Any, blocks: Any) -> list[tuple[str, dict[str, Any]]]:
    """The ``[[layers]]`` entries with blocks expanded: ``(where, table)`` per node, names and inputs final."""
    if not isinstance(entries, list) or not entries:
        raise WorkloadError("layers", "must be a non-empty array of tables ([[layers]] entries)")
    ex = _Expander(blocks)
    ex.layers(entries, "layers", {NETWORK_INPUT: NETWORK_INPUT}, NETWORK_INPUT)
    unused = [b for b in blocks if b not in ex.used_blocks]
    if unused:  # its layers would never be checked: refuse it, as an unknown key is refused
        raise WorkloadError(f"blocks.{_key(unused[0])}", "is defined but no layer uses it (type = \"block\", "
                                                         f"block = \"{unused[0]}\")")
    return ex.nodes


def label(i: int, layer: Layer) -> str:
    """How an error names node ``i``."""
    return f"node {layer.name!r} ({layer.kind}, #{i})" if not layer.name.startswith("#") else f"node #{i} ({layer.kind})"


class ShapeError(ValueError):
    """A node whose inputs do not fit it: ``index`` is the node, ``detail`` what does not fit."""

    def __init__(self, index: int, layer: Layer, detail: str):
        super().__init__(f"{label(index, layer)}: {detail}")
        self.index, self.detail = index, detail


def node_shapes(input_shape: tuple[int, ...], layers: tuple[Layer, ...]) -> list[tuple[int, ...]]:
    """Output shape (no batch) of every node; :class:`ShapeError` names the node that does not fit."""
    shapes: dict[str, tuple[int, ...]] = {NETWORK_INPUT: tuple(input_shape)}
    out = []
    prev = NETWORK_INPUT
    for i, layer in enumerate(layers):
        reads = layer.inputs or (prev,)
        try:
            ins = [shapes[n] for n in reads]
        except KeyError as exc:
            raise ShapeError(i, layer, f"unknown input {exc.args[0]!r}") from None
        try:
            shape = output_shape(layer, ins)
        except ValueError as exc:
            raise ShapeError(i, layer, str(exc)) from None
        shapes[layer.name or f"#{i}"] = shape
        prev = layer.name or f"#{i}"
        out.append(shape)
    return out


def input_shapes(input_shape: tuple[int, ...], layers: tuple[Layer, ...]) -> list[list[tuple[int, ...]]]:
    """The shapes each node reads, in the order of its ``inputs``."""
    shapes = {NETWORK_INPUT: tuple(input_shape)}
    for layer, s in zip(layers, node_shapes(input_shape, layers)):
        shapes[layer.name] = s
    return [[shapes[n] for n in layer.inputs] for layer in layers]


def check_graph(layers: tuple[Layer, ...], wheres: list[str]) -> None:
    """Every input defined earlier (no cycle), and every node but the last read by a later one."""
    seen = {NETWORK_INPUT}
    read: set[str] = set()
    for layer, where in zip(layers, wheres):
        for n in layer.inputs:
            if n not in seen:
                raise WorkloadError(f"{where}.inputs", f"{n!r} is not an earlier node (a node reads only earlier "
                                                       "nodes: no cycles)")
        if len(layer.inputs) > 1 and layer.kind not in ("add", "concat"):
            raise WorkloadError(f"{where}.inputs", f"{layer.kind} reads one node; add or concat merge several")
        read.update(layer.inputs)
        seen.add(layer.name)
    for layer, where in zip(layers[:-1], wheres):
        if layer.name not in read:
            raise WorkloadError(where, f"node {layer.name!r} ({layer.kind}) is not read by any later node; every "
                                       "node but the last must lead to the output")
