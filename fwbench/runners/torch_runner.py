"""PyTorch runners: ``torch`` (eager) and ``torch-compile`` (``torch.compile`` of the model).

Imported only inside a worker. Data and convolutions run NCHW (PyTorch's default) unless the
``channels_last`` option asks for the channels-last memory format; the layout is recorded per cell.

The network is a ``torch.fx.GraphModule`` built from the workload's nodes (:func:`build_module`) out of
PyTorch's own modules, loaded with the shared weights after :mod:`fwbench.layout`'s conversion. Where PyTorch
differs from the Keras semantics of :mod:`fwbench.layers`: an uneven ``same`` padding (TensorFlow's extra
bottom/right pixel) is an explicit :class:`SamePad` (an even one is the module's own ``padding=``); ``same``
average pooling uses ``count_include_pad=False`` (:class:`SameAvgPool2d` when uneven); a depthwise conv is
``Conv2d(groups=in_channels)``; softmax runs over dim 1 (channels or features); batch norm takes
``momentum = 1 - keras_momentum`` and updates its moving variance with the unbiased batch variance
(:meth:`TorchSession.batchnorm_stats`); flat features come in CHW order (converted in :mod:`fwbench.layout`).

Sequences stay ``[batch, time, features]`` (``batch_first``) and are built from PyTorch's own blocks, as
nanoGPT and the PyTorch tutorials write them: ``nn.Embedding``; the learned position table a parameter
whose first ``T`` rows are added (:class:`PositionEmbedding`, sliced to the batch's length, so one model takes
any ``T <= max_length``); ``nn.LayerNorm(d, eps=epsilon)``; ``nn.Linear`` per token; self-attention as
nanoGPT's ``CausalSelfAttention`` (:class:`SelfAttention`: one packed q/k/v ``nn.Linear``,
``F.scaled_dot_product_attention(is_causal=)``, an output ``nn.Linear``); ``nn.LSTM`` / ``nn.GRU``
(``batch_first=True``; the last step is ``output[:, -1]``); ``sequence_pool`` is ``x[:, -1]`` or
``x.mean(1)``. Batch norm on a sequence normalises each feature over batch and time (``BatchNorm1d`` on the
transposed tensor). The Keras -> PyTorch parameter repacking is :mod:`fwbench.layout`'s. Token ids stay int64
(autocast leaves them alone); per-token logits ``[batch, time, classes]`` are flattened for
``F.cross_entropy`` (:func:`cross_entropy`: the mean over batch and time).

Precision (option ``precision``): ``fp32`` (parameters and math in float32; TF32 off unless the ``tf32``
option is set), ``bf16`` / ``fp16`` (``torch.autocast`` of forward pass and loss, float32 parameters
and optimizer; ``fp16`` adds a ``GradScaler`` with dynamic loss scaling). On ``tpu`` the model runs on
torch_xla's lazy device and each step ends with ``torch_xla.sync()``.

Serving (the inference scenarios, :meth:`TorchSession.serve`): the request is a host tensor in the model's
layout (:meth:`TorchSession.host_input`); each request runs under ``torch.inference_mode()`` (and the
precision's autocast) with the model in eval mode: the tensor to the device, the forward pass, the logits
``.float().cpu().numpy()`` (the copy to the host is the synchronisation). ``torch-compile`` serves through
the same compiled module; its first request compiles for eval mode and inference mode.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.utils._python_dispatch import TorchDispatchMode

from fwbench.data import Batch
from fwbench.errors import CellSkipped
from fwbench.layers import MERGES, RECURRENT, same_padding, window
from fwbench.layout import (feature_orders, input_orders, nhwc_to_nchw, reorder_index, to_canonical_order,
                            to_channels_first)
from fwbench.runners.base import Session
from fwbench.weights import Params
from fwbench.workload_graph import NETWORK_INPUT
from fwbench.workload_spec import Layer, WorkloadSpec, layer_input_shapes

_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": nn.GELU, "swish": nn.SiLU, "softmax": nn.Softmax,
                "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
"""Keras activation -> PyTorch module (``nn.GELU()`` is the exact erf form; ``linear`` adds no module).
Softmax runs over Keras's last axis: dim 1 (the channels) of NCHW, dim -1 of flat and ``[batch, time, features]``
tensors."""
AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class SamePad(nn.Module):
    """TensorFlow's ``same`` padding: total padding split with the extra pixel at the bottom/right."""

    def __init__(self, in_hw: tuple[int, int], k: int, s: int, value: float = 0.0):
        super().__init__()
        (top, bottom), (left, right) = (same_padding(n, k, s) for n in in_hw)
        self.pad = (left, right, top, bottom)
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad, value=self.value) if any(self.pad) else x


class SameAvgPool2d(nn.AvgPool2d):
    """Average pooling with TensorFlow's uneven ``same`` windows, averaging only the real pixels each covers.

    ``count_include_pad=False`` leaves padding out of the divisor; PyTorch pads symmetrically, so TF's extra
    bottom/right pixel comes from ``ceil_mode`` (one more window at the end, divided by what it covers) at
    stride > 1, and at stride 1 (an even window) from one more pixel of padding on both sides and dropping the
    first output row and column.
    """

    def __init__(self, in_hw: tuple[int, int], k: int, s: int):
        before = [same_padding(n, k, s)[0] for n in in_hw]
        self.crop = s == 1 and k % 2 == 0
        super().__init__(k, s, padding=tuple(b + self.crop for b in before), ceil_mode=s > 1,  # type: ignore[arg-type]
                         count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y[..., 1:, 1:] if self.crop else y


class PositionEmbedding(nn.Module):
    """A learned position table ``[max_length, d]`` (GPT's ``wpe``) whose first ``T`` rows are added to ``x``."""

    def __init__(self, max_length: int, features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(max_length, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight[: x.shape[1]]


class SelfAttention(nn.Module):
    """Multi-head self-attention as nanoGPT's ``CausalSelfAttention`` (without dropout): ``c_attn`` projects
    every token to q, k and v at once, ``F.scaled_dot_product_attention`` runs the heads (scale
    ``1/sqrt(key_dim)``, its default; ``is_causal`` masks later keys), ``c_proj`` mixes the heads back."""

    def __init__(self, d: int, heads: int, key_dim: int, causal: bool):
        super().__init__()
        self.heads, self.key_dim, self.causal = heads, key_dim, causal
        self.c_attn = nn.Linear(d, 3 * heads * key_dim)
        self.c_proj = nn.Linear(heads * key_dim, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.c_attn(x).split(self.heads * self.key_dim, dim=-1)
        # [batch, time, heads * key_dim] -> [batch, heads, time, key_dim]
        q, k, v = (t.unflatten(-1, (self.heads, self.key_dim)).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.c_proj(y.transpose(1, 2).flatten(2))


class SequenceBatchNorm(nn.BatchNorm1d):
    """Batch norm of ``[batch, time, features]``: each feature over batch and time (``BatchNorm1d`` on NCL)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


@dataclass(frozen=True)
class Call:
    """A function node of the fx graph: ``fn(value, *args)`` (``operator.getitem`` for an RNN's output ...)."""

    fn: Any
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


LAST_STEP = (slice(None), -1)  # x[:, -1]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every prediction: ``[n, C]`` with ``[n]``, or per-token ``[n, T, C]`` with
    ``[n, T]`` flattened to ``[n * T, C]`` (the mean over batch and time, as the reference)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


class Reorder(nn.Module):
    """Puts flat features in another order (an add of inputs whose features PyTorch orders differently)."""

    def __init__(self, index: np.ndarray):
        super().__init__()
        self.register_buffer("index", torch.from_numpy(np.asarray(index, np.int64)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.index)


def build_module(spec: WorkloadSpec, params: Params) -> fx.GraphModule:
    """A ``torch.fx.GraphModule`` equal to ``spec``, loaded with the shared ``params`` (canonical layout).

    One ``call_module`` per PyTorch module of each node (``Conv2d``, ``BatchNorm2d``, ``ReLU`` ...), ``torch.add``
    and ``torch.cat`` for merges: the generated ``forward`` is straight-line code, as a hand-written ResNet's.
    ``model.meta["fwbench_nodes"]`` maps each node's name to the names of its submodules.
    """
    tparams = to_channels_first(spec, params)
    graph = fx.Graph()
    values = {NETWORK_INPUT: graph.placeholder("x")}
    mods: dict[str, nn.Module] = {}
    nodes: dict[str, list[str]] = {}

    def call(name: str, role: str, module: nn.Module | Call, arg: fx.Node) -> fx.Node:
        if isinstance(module, Call):
            return graph.call_function(module.fn, (arg, *module.args), module.kwargs)
        target = _unique(f"{_ident(name)}_{role}", mods)
        mods[target] = module
        nodes.setdefault(name, []).append(target)
        return graph.call_module(target, (arg,))

    orders = input_orders(spec)
    for layer, p, ins, in_orders in zip(spec.layers, tparams, layer_input_shapes(spec), orders):
        args = _node_inputs(layer, values)
        if layer.kind in MERGES:
            if layer.kind == "add" and len(ins[0]) == 1:  # flat: bring every input to the first's order
                for j, o in enumerate(in_orders[1:], 1):
                    index = reorder_index(o, in_orders[0], ins[j][0])
                    args[j] = args[j] if index is None else call(layer.name, f"reorder{j}", Reorder(index), args[j])
            value = (graph.call_function(torch.cat, (args, 1)) if layer.kind == "concat"
                     else functools.reduce(lambda a, b: graph.call_function(torch.add, (a, b)), args))
        else:
            value = args[0]
            for role, module in _layer_modules(layer, p, ins[0]):
                value = call(layer.name, role, module, value)
        values[layer.name] = value
    graph.output(values[spec.layers[-1].name])
    _relu_in_place(graph, mods)
    model = fx.GraphModule(mods, graph, class_name=_ident(spec.name).title().replace("_", "") or "Net")
    model.meta["fwbench_nodes"] = nodes  # GraphModule.meta survives a deepcopy
    return model


_KEEPS_NO_OUTPUT = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)  # their backward reads inputs only


def _relu_in_place(graph: fx.Graph, mods: dict[str, nn.Module]) -> None:
    """``ReLU(inplace=True)`` (and ReLU6) where it is safe, as torchvision's ResNet: on a value that only the
    activation reads, made by a conv, dense, batch norm, add or concat (whose backward does not need it)."""
    for node in graph.nodes:
        act = mods.get(node.target) if node.op == "call_module" else None
        if not isinstance(act, (nn.ReLU, nn.ReLU6)):
            continue
        (src,) = node.args
        made_by = mods.get(src.target) if src.op == "call_module" else src.target
        if len(src.users) == 1 and (isinstance(made_by, _KEEPS_NO_OUTPUT) or made_by in (torch.add, torch.cat)):
            act.inplace = True


def _node_inputs(layer: Layer, values: dict[str, fx.Node]) -> list[fx.Node]:
    """The graph values a node reads, in the order of its ``inputs``."""
    return [values[n] for n in layer.inputs]


def _ident(name: str) -> str:
    """A Python identifier for a node name (``stage2.1/#3`` -> ``stage2_1_3``)."""
    s = re.sub(r"\W+", "_", name).strip("_")
    return s if s[:1].isalpha() else f"n{s}"


def _unique(name: str, taken: dict[str, Any]) -> str:
    k, out = 1, name
    while out in taken:
        k += 1
        out = f"{name}_{k}"
    return out


def _activation(name: str, ndim: int = 1) -> list[tuple[str, nn.Module]]:
    """The activation's module for a ``ndim``-dimensional value (no batch): softmax over Keras's last axis."""
    if name == "softmax":
        return [(name, nn.Softmax(dim=1 if ndim == 3 else -1))]
    return [] if name == "linear" else [(name, _ACTIVATIONS[name]())]


def _layer_modules(layer: Layer, p: dict[str, np.ndarray],
                   in_shape: tuple[int, ...]) -> list[tuple[str, nn.Module | Call]]:
    """(role, module or function) pairs computing one single-input node on channels-first tensors (sequences
    ``[batch, time, features]``); ``p`` is in PyTorch's layout (:func:`fwbench.layout.to_channels_first`)."""
    kind, k, s = layer.kind, window(layer), layer.strides
    # "same" padding that is symmetric goes to the module's own padding=; TF's uneven split gets a SamePad
    pads = [same_padding(n, k, s) for n in in_shape[:2]] if layer.padding == "same" else [(0, 0), (0, 0)]
    even = all(a == b for a, b in pads)
    own = tuple(a for a, _ in pads) if even else (0, 0)
    if kind in ("conv2d", "depthwise_conv2d"):
        c = in_shape[-1]
        out, groups = (layer.filters, layer.groups) if kind == "conv2d" else (c * layer.depth_multiplier, c)
        conv = nn.Conv2d(c, out, k, stride=s, padding=own, groups=groups, bias=layer.use_bias)
        _load(conv, weight=p["kernel"], **({"bias": p["bias"]} if layer.use_bias else {}))
        pad = [] if even else [("pad", SamePad(in_shape[:2], k, s))]
        return [*pad, ("conv" if kind == "conv2d" else "dwconv", conv), *_activation(layer.activation, 3)]
    if kind == "maxpool2d":  # MaxPool2d's own padding never wins a max, as TF's -inf padding
        pad = [] if even else [("pad", SamePad(in_shape[:2], k, s, value=-math.inf))]
        return [*pad, ("maxpool", nn.MaxPool2d(k, stride=s, padding=own))]
    if kind == "avgpool2d":
        return [("avgpool", nn.AvgPool2d(k, stride=s, padding=own, count_include_pad=False) if even
                 else SameAvgPool2d(in_shape[:2], k, s))]
    if kind == "global_avgpool2d":
        return [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
    if kind == "zero_padding2d":
        top, bottom, left, right = layer.pad
        return [("pad", nn.ZeroPad2d((left, right, top, bottom)))]
    if kind == "flatten":
        return [("flatten", nn.Flatten())]
    if kind == "dense":
        lin = nn.Linear(in_shape[-1], layer.units, bias=layer.use_bias)
        _load(lin, weight=p["kernel"], **({"bias": p["bias"]} if layer.use_bias else {}))
        return [("linear", lin), *_activation(layer.activation, len(in_shape))]  # per token on a sequence
    if kind == "dropout":
        return [("dropout", nn.Dropout(layer.rate))]
    if kind == "batchnorm":
        cls = {3: nn.BatchNorm2d, 2: SequenceBatchNorm}.get(len(in_shape), nn.BatchNorm1d)
        # Keras momentum m (moving = m*moving + (1-m)*batch) is PyTorch momentum 1-m.
        bn = cls(in_shape[-1], eps=layer.epsilon, momentum=1.0 - layer.momentum)
        _load(bn, weight=p["gamma"], bias=p["beta"], running_mean=p["moving_mean"], running_var=p["moving_variance"])
        return [("bn", bn)]
    if kind == "activation":
        return _activation(layer.activation, len(in_shape)) or [("linear", nn.Identity())]
    if kind == "embedding":
        emb = nn.Embedding(layer.input_dim, layer.output_dim)
        _load(emb, weight=p["embeddings"])
        return [("embedding", emb)]
    if kind == "position_embedding":
        pos = PositionEmbedding(layer.max_length, in_shape[-1])
        _load(pos, weight=p["embeddings"])
        return [("position", pos)]
    if kind == "layernorm":
        ln = nn.LayerNorm(in_shape[-1], eps=layer.epsilon)
        _load(ln, weight=p["gamma"], bias=p["beta"])
        return [("ln", ln)]
    if kind == "multi_head_attention":
        attn = SelfAttention(in_shape[-1], layer.heads, layer.key_dim, layer.causal)
        _load(attn.c_attn, weight=p["in_weight"], bias=p["in_bias"])
        _load(attn.c_proj, weight=p["out_weight"], bias=p["out_bias"])
        return [("attention", attn)]
    if kind in RECURRENT:
        rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(in_shape[-1], layer.units, batch_first=True)
        _load(rnn, **p)
        if kind == "lstm":
            # Keras's LSTM has one bias; PyTorch sums two. bias_hh stays 0 and is frozen: trainable, it would get
            # the same gradient as bias_ih and Adam would move the sum twice as far (measured on the bundled
            # lstm: 1.4e-3 off every Keras-layer runner after 4 steps). GRU's two biases are Keras's two.
            rnn.bias_hh_l0.requires_grad_(False)
        out = [(kind, rnn), ("output", Call(operator.getitem, (0,)))]  # (output, state) -> every step's h
        return out if layer.return_sequences else [*out, ("last", Call(operator.getitem, (LAST_STEP,)))]
    if kind == "sequence_pool":
        return [("pool", Call(operator.getitem, (LAST_STEP,)) if layer.pool == "last" else Call(torch.mean, (1,)))]
    raise ValueError(f"unknown layer {kind}")


def _load(module: nn.Module, **tensors: np.ndarray) -> None:
    with torch.no_grad():
        for name, value in tensors.items():
            getattr(module, name).copy_(torch.from_numpy(np.asarray(value)))


class KerasAdam(torch.optim.Adam):
    """``torch.optim.Adam`` with the epsilon where Keras and TensorFlow put it.

    Both compute ``m_hat / (sqrt(v_hat) + eps)``, but PyTorch bias-corrects ``sqrt(v)`` before adding eps and
    Keras after (``lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``, the Adam paper's "epsilon hat"),
    so the same ``epsilon = 1e-7`` is a different optimizer. PyTorch's eps ``eps / sqrt(1 - b2^t)`` at step t
    is exactly Keras's; it is set before each step (a Python float per parameter group, no extra kernel).
    Measured on the bundled transformer: plain ``Adam(eps=1e-7)`` ends the 4 parity steps 2.8e-4 away from
    every TensorFlow and Keras runner (float64 replays: 2.43067 vs 2.43095); this one matches them.
    """

    def __init__(self, params: Any, lr: float, betas: tuple[float, float], eps: float):
        super().__init__(params, lr=lr, betas=betas, eps=eps)
        self.keras_epsilon, self.keras_steps = eps, 0

    def step(self, closure: Any = None) -> Any:
        self.keras_steps += 1
        for group in self.param_groups:
            group["eps"] = self.keras_epsilon / math.sqrt(1.0 - group["betas"][1] ** self.keras_steps)
        return super().step(closure)


def make_optimizer(spec: WorkloadSpec, params: Any) -> torch.optim.Optimizer:
    o = spec.optimizer
    if o.name == "adam":
        return KerasAdam(params, lr=o.learning_rate, betas=(o.beta_1, o.beta_2), eps=o.epsilon)
    return torch.optim.SGD(params, lr=o.learning_rate, momentum=o.momentum)


class TorchSession(Session):
    """PyTorch eager: a plain ``zero_grad / forward / backward / step`` loop."""

    compiled = False

    def setup(self) -> None:
        torch.set_num_threads(self.options.threads)
        self.precision = self.options.precision
        self.xla_sync = None
        if self.device == "cuda":
            if not torch.cuda.is_available():
                raise CellSkipped(f"torch {torch.__version__} sees no CUDA device")
            if self.precision == "bf16" and not torch.cuda.is_bf16_supported():
                raise CellSkipped(f"this GPU ({torch.cuda.get_device_name()}) does not support bf16")
            self.dev = torch.device("cuda")
        elif self.device == "tpu":
            if self.compiled:
                raise CellSkipped("torch-compile does not run on TPUs here; the torch runner uses torch_xla")
            from fwbench.devices import torch_xla_device

            self.dev, self.xla_sync = torch_xla_device()
        elif self.device == "cpu":
            self.dev = torch.device("cpu")
        else:
            raise CellSkipped(f"the torch runners support cpu, cuda and tpu, not {self.device}")
        # fp32 means fp32: TF32 tensor-core math is off unless asked for (recorded in settings).
        tf32 = self.options.tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        self.amp_dtype = AMP_DTYPES[self.precision]
        self.channels_last = self.options.channels_last

    def build(self, spec: WorkloadSpec, params: Params) -> None:
        self.spec = spec
        model = build_module(spec, params).to(self.dev)
        if self.channels_last and len(spec.input_shape) == 3:
            model = model.to(memory_format=torch.channels_last)
        model.train(spec.mode == "train")
        self.model = model
        self.opt = make_optimizer(spec, model.parameters())
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none.
        self.scaler = torch.amp.GradScaler(self.dev.type) if self.precision == "fp16" else None
        self.forward = self._wrap(model)

    def _autocast(self) -> Any:
        return torch.autocast(self.dev.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _wrap(self, model: nn.Module) -> Any:
        return model

    def put(self, batch: Batch) -> Any:
        x, y = batch
        if x.ndim == 4:
            x = nhwc_to_nchw(x)
        tx = torch.from_numpy(x).to(self.dev)
        if self.channels_last and tx.ndim == 4:
            tx = tx.contiguous(memory_format=torch.channels_last)
        return tx, torch.from_numpy(y).to(self.dev)

    def train_step(self, batch: Any) -> Any:
        x, y = batch
        self.opt.zero_grad(set_to_none=True)
        with self._autocast():
            loss = cross_entropy(self.forward(x), y)  # autocast computes cross-entropy in float32
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)  # skipped (and the scale lowered) when the gradients overflowed
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        if self.xla_sync is not None:
            self.xla_sync()
        return loss.detach()

    def infer_step(self, batch: Any) -> Any:
        x, y = batch
        with torch.no_grad(), self._autocast():
            loss = cross_entropy(self.forward(x), y)
        if self.xla_sync is not None:
            self.xla_sync()
        return loss

    def value(self, loss: Any) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()  # explicit: all queued kernels, the optimizer update included
        return float(loss.item())  # .item() also waits for the device (and, on XLA, runs the graph)

    def values(self, losses: list[Any]) -> list[float]:
        """A window's losses in one device-to-host transfer (after the barrier of windowed timing)."""
        if not losses:
            return []
        if self.device == "cuda":
            torch.cuda.synchronize()
        return [float(v) for v in torch.stack([loss.detach().float() for loss in losses]).cpu().tolist()]

    def host_input(self, x: np.ndarray) -> torch.Tensor:
        """A CPU tensor as a PyTorch server receives it: images NCHW and contiguous (in the channels-last memory
        format when the ``channels_last`` option is set, as :meth:`put` lays them out), token ids int64."""
        if x.ndim == 4:
            t = torch.from_numpy(nhwc_to_nchw(x))
            return t.contiguous(memory_format=torch.channels_last) if self.channels_last else t
        return torch.from_numpy(np.ascontiguousarray(x, np.int64 if self.spec.tokens else np.float32))

    def serve(self, payload: torch.Tensor) -> np.ndarray:
        """``torch.inference_mode()`` (and the precision's autocast): the payload to the device, the model's
        forward in eval mode, the logits as float32 back on the host (``.cpu()`` waits for the device).

        An ``infer`` build is in eval mode from :meth:`build` on; a ``train`` build is put in eval mode for the
        request and back in train mode after it (never the case in a timed inference cell)."""
        if self.model.training:
            self.model.eval()
            try:
                return self._serve(payload)
            finally:
                self.model.train()
        return self._serve(payload)

    def _serve(self, payload: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), self._autocast():
            logits = self.forward(payload.to(self.dev)).float()
            if self.xla_sync is not None:
                self.xla_sync()
            return logits.cpu().numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), self._autocast():
                return self.forward(self.put((x, np.zeros(len(x), np.int64)))[0]).float().cpu().numpy()
        finally:
            self.model.train(was_training)

    def peak_device_bytes(self) -> int | None:
        return int(torch.cuda.max_memory_allocated()) if self.device == "cuda" else None

    def batchnorm_stats(self) -> list[np.ndarray]:
        """``running_mean`` and ``running_var`` of every batch-norm node, canonical channel order.

        Not hidden: PyTorch updates ``running_var`` with the *unbiased* batch variance (times n/(n-1), n the
        values per channel in the batch), Keras with the biased one, so after training PyTorch's moving
        variance is larger by about (1 - momentum) * var / (n - 1) per step (see ``docs/workloads.md``).
        Features after a flatten are put back from PyTorch's CHW order into the canonical HWC order.
        """
        out = []
        for layer, order in zip(self.spec.layers, feature_orders(self.spec)):
            if layer.kind == "batchnorm":
                (target,) = self.model.meta["fwbench_nodes"][layer.name]
                bn = self.model.get_submodule(target)
                stats = torch.stack([bn.running_mean, bn.running_var]).detach().double().cpu().numpy()
                out.append(to_canonical_order(stats, order))
        return out

    def settings(self) -> dict[str, Any]:
        return {
            "layout": ("[batch, time, features]" if getattr(self, "spec", None) is not None and self.spec.tokens
                       else "NHWC (channels_last)" if self.channels_last else "NCHW"),
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "dtype": "float32",
            "precision": self.precision,
            "autocast_dtype": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else None,
            "loss_scaling": "GradScaler (dynamic)" if self.precision == "fp16" else None,
            "tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_tf32": torch.backends.cudnn.allow_tf32,
            "mkldnn": torch.backends.mkldnn.is_available(),
            "compiled": self.compiled,
            "optimizer": ("KerasAdam: torch.optim.Adam with eps / sqrt(1 - beta_2^t), Keras's epsilon placement"
                          if isinstance(getattr(self, "opt", None), KerasAdam) else type(getattr(self, "opt", None)).__name__),
            **self.sequence_impls(),
        }

    def sequence_impls(self) -> dict[str, str]:
        """``lstm_impl`` / ``gru_impl`` / ``attention_impl`` for a workload with those kinds: the aten kernel each
        module dispatches to, seen by running it once (outside timing) on a batch of the workload's length
        under the session's precision, with a dispatch mode recording the ops (:class:`_OpNames`)."""
        spec = getattr(self, "spec", None)
        kinds = {layer.kind for layer in spec.layers} if spec is not None else set()
        out: dict[str, str] = {}
        for kind, cls in (("lstm", nn.LSTM), ("gru", nn.GRU), ("multi_head_attention", SelfAttention)):
            if kind not in kinds:
                continue
            key = "attention_impl" if cls is SelfAttention else f"{kind}_impl"
            module = next(m for m in self.model.modules() if isinstance(m, cls))
            if self.xla_sync is not None:
                out[key] = "lowered by XLA (torch_xla)"
                continue
            ops = self._ops_of(module, module.input_size if cls is not SelfAttention else module.c_attn.in_features)
            out[key] = _attention_impl(ops, self.dev) if cls is SelfAttention else _rnn_impl(ops)
            if self.compiled:
                out[key] += ("; under torch.compile it runs eagerly: dynamo does not trace nn.LSTM/nn.GRU "
                             "(torch._dynamo.config.allow_rnn = False)" if cls is not SelfAttention
                             else "; under torch.compile the traced graph calls the same kernel")
        return out

    def _ops_of(self, module: nn.Module, features: int) -> set[str] | str:
        """The aten ops one forward of ``module`` dispatches to (its error message if it fails)."""
        x = torch.randn(min(2, self.spec.batch_size), self.spec.input_shape[0], features, device=self.dev,
                        requires_grad=self.spec.mode == "train")
        try:
            with _OpNames() as seen, torch.set_grad_enabled(self.spec.mode == "train"), self._autocast():
                module(x)
        except Exception as exc:  # recorded, not raised: the cell itself already ran
            return f"probe failed: {str(exc).splitlines()[0][:200]}"
        return seen.names


class TorchCompileSession(TorchSession):
    """``torch.compile`` of the model (default mode, inductor backend, ``dynamic=None``: the first call compiles
    for its shapes, a call with a new sequence length recompiles once with that dimension symbolic); the first
    step pays compilation. Dynamo does not trace ``nn.LSTM`` / ``nn.GRU`` (``allow_rnn`` is off by default)
    and cannot resume after that break, so in a recurrent network only the layers before the first recurrent
    one are compiled (``compile_graph_breaks`` in :meth:`settings`)."""

    compiled = True
    backend = "inductor"

    def _wrap(self, model: nn.Module) -> Any:
        import torch._dynamo

        torch._dynamo.reset()  # each build compiles afresh, so first-step time is the real compile cost
        self._frames_after_first: int | None = None
        self._breaks0 = _graph_breaks()  # dynamo's counters outlive reset(): this session's are the increase
        self._graphs0 = _dynamo_count("stats", "unique_graphs")
        return torch.compile(model, backend=self.backend, mode=self.compile_mode)

    @property
    def compile_mode(self) -> str:
        """``reduce-overhead`` (inductor's CUDA graphs: the step's kernels captured once and replayed with one
        launch) with ``--cuda-graphs`` on a GPU; else ``default``. On the CPU there are no CUDA graphs to
        capture, so the option is recorded as not applied."""
        return "reduce-overhead" if self.options.cuda_graphs and self.device == "cuda" else "default"

    def train_step(self, batch: Any) -> Any:
        loss = super().train_step(batch)
        if self._frames_after_first is None:
            self._frames_after_first = _compiled_frames()
        return loss

    def infer_step(self, batch: Any) -> Any:
        loss = super().infer_step(batch)
        if self._frames_after_first is None:
            self._frames_after_first = _compiled_frames()
        return loss

    def serve(self, payload: torch.Tensor) -> np.ndarray:
        """The compiled module in eval mode under ``inference_mode`` (the first request compiles for it)."""
        logits = super().serve(payload)
        if self._frames_after_first is None:
            self._frames_after_first = _compiled_frames()
        return logits

    def retraces(self) -> int | None:
        """Frames compiled after the first step: each a recompilation (a new input shape, such as another
        sequence length, or another guard that failed). The first step's compilations, one per frame dynamo
        compiles (several when a graph break splits the model), are expected."""
        first = getattr(self, "_frames_after_first", None)
        return 0 if first is None else _compiled_frames() - first

    def settings(self) -> dict[str, Any]:
        import torch._dynamo.config

        automatic = torch._dynamo.config.automatic_dynamic_shapes
        graphs = ("applied: torch.compile(mode='reduce-overhead')" if self.compile_mode == "reduce-overhead"
                  else "asked for, not applied: CUDA graphs need a CUDA device" if self.options.cuda_graphs
                  else "off (--cuda-graphs not given)")
        out = {**super().settings(), "compile_backend": self.backend, "compile_mode": self.compile_mode,
               "cuda_graphs": graphs,
               "dynamic_shapes": ("torch.compile(dynamic=None): the first shapes compile static; a dimension that "
                                  "changes (another sequence length) is made symbolic by one recompilation"
                                  if automatic else "torch.compile(dynamic=None), automatic_dynamic_shapes off: "
                                  "every new shape recompiles"),
               # graphs dynamo captured (recompilations included): 0 means every step ran eagerly
               "compile_graphs": _dynamo_count("stats", "unique_graphs") - getattr(self, "_graphs0", 0)}
        before = getattr(self, "_breaks0", {})
        breaks = {k: n - before.get(k, 0) for k, n in _graph_breaks().items() if n > before.get(k, 0)}
        if breaks:
            out["compile_graph_breaks"] = breaks
        return out


def _dynamo_count(group: str, name: str) -> int:
    from torch._dynamo.utils import counters

    return int(counters[group][name])


def _compiled_frames() -> int:
    return _dynamo_count("frames", "ok")


def _graph_breaks() -> dict[str, int]:
    """Dynamo's graph-break reasons since the last reset (the first line of each), with their counts."""
    from torch._dynamo.utils import counters

    out: dict[str, int] = {}
    for reason, n in counters["unimplemented"].items():
        line = str(reason).strip().splitlines()[0][:200]
        out[line] = out.get(line, 0) + int(n)
    return out


class _OpNames(TorchDispatchMode):
    """Records the names of the aten ops dispatched inside it (after composite ops such as ``aten::lstm`` or
    ``scaled_dot_product_attention`` have chosen their kernels)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.names.add(func._schema.name)
        return func(*args, **(kwargs or {}))


_RNN_KERNELS = {"aten::_cudnn_rnn": "cuDNN (aten::_cudnn_rnn, fused over time)",
                "aten::mkldnn_rnn_layer": "oneDNN (aten::mkldnn_rnn_layer, fused over time)",
                "aten::miopen_rnn": "MIOpen (aten::miopen_rnn)",
                "aten::_thnn_fused_lstm_cell": "aten fused cell per step (aten::_thnn_fused_lstm_cell)",
                "aten::_thnn_fused_gru_cell": "aten fused cell per step (aten::_thnn_fused_gru_cell)"}
_SDPA_KERNELS = {"aten::_scaled_dot_product_flash_attention_for_cpu": "flash-attention CPU kernel",
                 "aten::_scaled_dot_product_flash_attention": "flash",
                 "aten::_scaled_dot_product_efficient_attention": "memory-efficient",
                 "aten::_scaled_dot_product_cudnn_attention": "cuDNN",
                 "aten::_scaled_dot_product_fused_attention_overrideable": "overrideable (backend's own)"}


def _rnn_impl(ops: set[str] | str) -> str:
    if isinstance(ops, str):
        return ops
    for op, label in _RNN_KERNELS.items():
        if op in ops:
            return label
    return "aten per-step cells (matmuls and pointwise ops each step)"


def _attention_impl(ops: set[str] | str, dev: torch.device) -> str:
    if isinstance(ops, str):
        return f"F.scaled_dot_product_attention, {ops}"
    found = [f"{label} ({op})" for op, label in _SDPA_KERNELS.items() if op in ops]
    backend = found[0] if found else "math (matmul + softmax, no fused kernel)"
    if dev.type == "cuda":
        b = torch.backends.cuda
        switches = (("flash", b.flash_sdp_enabled()), ("memory-efficient", b.mem_efficient_sdp_enabled()),
                    ("cuDNN", b.cudnn_sdp_enabled()), ("math", b.math_sdp_enabled()))
        enabled = [name for name, on in switches if on]
        where = f"CUDA, backends enabled: {', '.join(enabled)}"
    else:
        where = f"{dev.type.upper()} (the torch.backends.cuda SDPA switches do not apply)"
    return f"F.scaled_dot_product_attention, backend: {backend}; {where}"
