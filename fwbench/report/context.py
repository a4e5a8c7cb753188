"""The reader's context of a report (pure): what each runner is, what each workload computes, and the exact
command that made each results file.

Everything comes from the results documents themselves (their ``workloads`` definitions, ``config.argv``
and cells), never from the workload files installed here, which may have changed since the run.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from fwbench.textsafe import shell_join

# One line per runner, in the registry's order: (English, Chinese).
RUNNER_GUIDE: dict[str, tuple[str, str]] = {
    "torch": ("PyTorch, eager: each operation runs as Python calls it (dynamic graph)",
              "PyTorch 即时执行:每个运算在 Python 调用时立即执行(动态图)"),
    "torch-compile": ("PyTorch with torch.compile (Inductor): the step is traced and compiled into fused kernels "
                      "on its first call",
                      "PyTorch + torch.compile(Inductor 后端):训练步在首次调用时被追踪并编译成融合内核"),
    "tf-eager": ("TensorFlow, eager: a GradientTape step run operation by operation, no graph",
                 "TensorFlow 即时执行:GradientTape 训练步逐个运算执行,不建图"),
    "tf-graph": ("TensorFlow tf.function: the step is traced once into a static graph",
                 "TensorFlow tf.function:训练步首次调用时被追踪成静态图"),
    "tf-xla": ("TensorFlow tf.function(jit_compile=True): the static graph compiled by XLA",
               "TensorFlow tf.function(jit_compile=True):静态图再由 XLA 编译"),
    "keras": ("Keras 3 on TensorFlow: Model.train_on_batch, a tf.function step without XLA",
              "Keras 3,TensorFlow 后端:Model.train_on_batch,tf.function 训练步,不用 XLA"),
    "keras-torch": ("Keras 3 on PyTorch: Model.train_on_batch, run eagerly by torch",
                    "Keras 3,PyTorch 后端:Model.train_on_batch,由 torch 即时执行"),
    "keras-jax": ("Keras 3 on JAX: Model.train_on_batch, compiled by XLA (jit)",
                  "Keras 3,JAX 后端:Model.train_on_batch,由 XLA 编译(jit)"),
    "fake": ("no framework: fwbench's deterministic test double", "无框架:fwbench 自带的确定性测试替身"),
}

PHRASES: dict[str, dict[str, str]] = {
    "en": {"title": "Reader's context", "runners": "Runners", "workloads": "Workloads", "commands": "Commands",
           "unknown_runner": "not a runner this fwbench knows", "col_workload": "workload", "col_mode": "mode",
           "col_batch": "batch", "col_input": "input", "col_params": "trainable parameters",
           "col_flops": "FLOPs per step", "col_layers": "layers", "no_command": "not recorded",
           "flops_note": "FLOPs per step: 2 per multiply-add of the conv, dense, attention and recurrent layers, "
                         "forward and backward (forward only in infer mode), for the whole batch (see fwbench.flops).",
           "more_layers": "{n} more"},
    "zh": {"title": "读者须知", "runners": "运行器", "workloads": "工作负载", "commands": "命令",
           "unknown_runner": "本版 fwbench 不认识的运行器", "col_workload": "工作负载", "col_mode": "模式",
           "col_batch": "批大小", "col_input": "输入", "col_params": "可训练参数",
           "col_flops": "每步 FLOPs", "col_layers": "层", "no_command": "未记录",
           "flops_note": "每步 FLOPs:卷积、全连接、注意力与循环层的每次乘加计 2 次,含前向与反向(infer 模式仅前向),"
                         "按整个批次计(见 fwbench.flops)。",
           "more_layers": "另 {n} 层"},
}

MAX_LAYER_ITEMS = 12  # a longer network shows its first and last layers around "… N more …"


def text(lang: str, key: str, **fields: object) -> str:
    return PHRASES[lang][key].format(**fields)


@dataclass
class WorkloadDef:
    """One workload as the results stored it: its layers (compact), size and cost."""

    name: str
    mode: str
    batch: int | None
    input_shape: str
    parameters: int | None
    flops_per_step: float | None
    layers: str
    description: str = ""


@dataclass
class Context:
    """What a reader needs before the numbers: ``runners`` (name, one line), ``workloads``, and ``commands``
    (file label, command line, already shell-quoted; ``None`` when the file did not record it)."""

    runners: list[tuple[str, str]] = field(default_factory=list)
    workloads: list[WorkloadDef] = field(default_factory=list)
    commands: list[tuple[str, str | None]] = field(default_factory=list)


def runner_line(name: str, lang: str) -> str:
    """The one-line guide to ``name``: this module's table, else the registry's mode, else "unknown"."""
    if name in RUNNER_GUIDE:
        return RUNNER_GUIDE[name][0 if lang == "en" else 1]
    from fwbench.runners.registry import RUNNERS

    info = RUNNERS.get(name)
    return info.mode if info else text(lang, "unknown_runner")


def runner_guide(runners: list[str], lang: str) -> list[tuple[str, str]]:
    """One line per runner present, in the registry's order (unknown names after, as first seen)."""
    order = list(RUNNER_GUIDE)
    present = sorted(dict.fromkeys(runners), key=lambda r: (order.index(r) if r in order else len(order)))
    return [(r, runner_line(r, lang)) for r in present]


def layer_label(layer: dict[str, Any]) -> list[str]:
    """A stored layer as one or two short items: ``conv 3×3×32``, then its activation if any."""
    kind = str(layer.get("kind", "?"))
    g = layer.get
    stride = f"/{g('strides')}" if isinstance(g("strides"), int) and g("strides", 1) > 1 else ""
    labels = {
        "conv2d": f"conv {g('kernel_size')}×{g('kernel_size')}×{g('filters')}{stride}",
        "depthwise_conv2d": f"depthwise conv {g('kernel_size')}×{g('kernel_size')}{stride}",
        "maxpool2d": f"maxpool {g('pool_size')}{stride if g('strides') != g('pool_size') else ''}",
        "avgpool2d": f"avgpool {g('pool_size')}{stride if g('strides') != g('pool_size') else ''}",
        "global_avgpool2d": "global avgpool", "zero_padding2d": "zero padding", "flatten": "flatten",
        "dense": f"dense {g('units')}", "dropout": f"dropout {g('rate')}", "batchnorm": "batchnorm",
        "activation": str(g("activation")), "add": "add", "concat": "concat",
        "embedding": f"embedding {g('input_dim')}×{g('output_dim')}", "position_embedding": "position embedding",
        "layernorm": "layernorm",
        "multi_head_attention": f"attention {g('heads')}×{g('key_dim')}" + (" causal" if g("causal") else ""),
        "lstm": f"lstm {g('units')}", "gru": f"gru {g('units')}", "sequence_pool": f"{g('pool')} pool",
    }
    out = [labels.get(kind, kind)]
    act = g("activation")
    if kind in ("conv2d", "depthwise_conv2d", "dense") and act and act != "linear":
        out.append(str(act))
    return out


def layers_text(layers: list[Any], lang: str) -> str:
    """The network as ``conv 3×3×32 → relu → maxpool 2 → … → dense 10``, long ones cut in the middle."""
    items = [i for layer in layers if isinstance(layer, dict) for i in layer_label(layer)]
    if len(items) > MAX_LAYER_ITEMS:
        head, tail = items[: MAX_LAYER_ITEMS - 4], items[-3:]
        items = head + [f"… {text(lang, 'more_layers', n=len(items) - len(head) - len(tail))} …"] + tail
    return " → ".join(items)


def _spec_numbers(stored: dict[str, Any]) -> tuple[int | None, float | None]:
    """Trainable parameters and analytic FLOPs per step of a stored definition (``None`` if it does not parse)."""
    from fwbench import flops
    from fwbench.workload_spec import WorkloadSpec, parameter_count

    try:
        spec = WorkloadSpec.from_dict(stored)
        return parameter_count(spec), float(flops.flops_per_step(spec))
    except Exception:  # an old or hand-edited definition: show what is stored, without the derived numbers
        return None, None


def workload_defs(docs: list[tuple[str, dict[str, Any]]], cells: list[Any], lang: str = "en") -> list[WorkloadDef]:
    """The definition of every workload the cells ran, from the first document that stores it. FLOPs per step
    are the cells' ``flops_per_step`` where recorded, else computed from the stored definition."""
    out = []
    for name in dict.fromkeys(c.workload for c in cells):
        stored = next((d["workloads"][name] for _, d in docs if isinstance((d.get("workloads") or {}).get(name), dict)),
                      None)
        recorded = next((c.get("flops_per_step") for c in cells if c.workload == name and c.get("flops_per_step")),
                        None)
        if stored is None:
            out.append(WorkloadDef(name, "?", None, "?", None, recorded, ""))
            continue
        params, computed = _spec_numbers(stored)
        shape = stored.get("input_shape") or []
        out.append(WorkloadDef(name, str(stored.get("mode") or "train"), stored.get("batch_size"),
                               "×".join(str(n) for n in shape) or "?", params,
                               recorded if recorded is not None else computed,
                               layers_text(list(stored.get("layers") or []), lang),
                               str(stored.get("description") or "")))
    return out


def commands(docs: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str | None]]:
    """``fwbench`` plus each file's stored ``config.argv``, every word shell-quoted; one line per file (the two
    sides of an ``fwbench ab`` file, labelled ``x.json [A]`` and ``x.json [B]``, share one)."""
    out: dict[str, str | None] = {}
    for label, doc in docs:
        argv = (doc.get("config") or {}).get("argv")
        side = re.search(r":[AB]$", str(doc.get("run_id", "")))
        out.setdefault(label[: -len(" [A]")] if side and label.endswith(f" [{side.group()[1]}]") else label,
                       shell_join(["fwbench", *map(str, argv)]) if argv else None)
    return list(out.items())


def build_context(docs: list[tuple[str, dict[str, Any]]], cells: list[Any], lang: str) -> Context:
    """The context of a report on ``docs`` whose cells (typed :class:`fwbench.cells.Cell`) are ``cells``."""
    return Context(runners=runner_guide([c.runner for c in cells], lang), workloads=workload_defs(docs, cells, lang),
                   commands=commands(docs))


def flops_text(x: float | None) -> str:
    """``1.23e9`` -> ``1.23 GFLOP``."""
    if x is None or not math.isfinite(x):
        return "-"
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} FLOP"
