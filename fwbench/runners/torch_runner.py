"""PyTorch runners: ``torch`` (eager) and ``torch-compile`` (``torch.compile`` of the model).

Imported only inside a worker. Data and convolutions run NCHW (PyTorch's default) unless the
``channels_last`` option asks for the channels-last memory format; the layout is recorded per cell.

Precision (option ``precision``): ``fp32`` (parameters and math in float32; TF32 off unless the ``tf32``
option is set), ``bf16`` / ``fp16`` (``torch.autocast`` of forward pass and loss, float32 parameters
and optimizer; ``fp16`` adds a ``GradScaler`` with dynamic loss scaling). On ``tpu`` the model runs on
torch_xla's lazy device and each step ends with ``torch_xla.sync()``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fwbench.data import Batch
from fwbench.layout import nhwc_to_nchw, to_channels_first
from fwbench.errors import CellSkipped
from fwbench.runners.base import Session
from fwbench.weights import Params
from fwbench.workload_spec import Layer, WorkloadSpec, layer_shapes

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "linear": nn.Identity}
AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class SamePad(nn.Module):
    """TensorFlow's ``same`` padding: total padding split with the extra pixel at the bottom/right."""

    def __init__(self, in_hw: tuple[int, int], k: int, s: int, value: float = 0.0):
        super().__init__()
        pads = []
        for n in in_hw:
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        self.pad = (left, right, top, bottom)
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad, value=self.value) if any(self.pad) else x


def build_module(spec: WorkloadSpec, params: Params) -> nn.Sequential:
    """An ``nn.Sequential`` equal to ``spec``, loaded with the shared ``params`` (canonical layout)."""
    tparams = to_channels_first(spec, params)
    shapes = [tuple(spec.input_shape)] + layer_shapes(spec.input_shape, spec.layers)
    mods: list[nn.Module] = []
    for layer, p, in_shape in zip(spec.layers, tparams, shapes):
        mods += _layer_modules(layer, p, in_shape)
    return nn.Sequential(*mods)


def _layer_modules(layer: Layer, p: dict[str, np.ndarray], in_shape: tuple[int, ...]) -> list[nn.Module]:
    if layer.kind == "conv2d":
        conv = nn.Conv2d(in_shape[-1], layer.filters, layer.kernel_size, stride=layer.strides)
        _load(conv, weight=p["kernel"], bias=p["bias"])
        pad = [SamePad(in_shape[:2], layer.kernel_size, layer.strides)] if layer.padding == "same" else []
        return [*pad, conv, _ACTIVATIONS[layer.activation]()]
    if layer.kind == "maxpool2d":
        pad = ([SamePad(in_shape[:2], layer.pool_size, layer.strides, value=-math.inf)]
               if layer.padding == "same" else [])
        return [*pad, nn.MaxPool2d(layer.pool_size, stride=layer.strides)]
    if layer.kind == "flatten":
        return [nn.Flatten()]
    if layer.kind == "dense":
        lin = nn.Linear(in_shape[-1], layer.units)
        _load(lin, weight=p["kernel"], bias=p["bias"])
        return [lin, _ACTIVATIONS[layer.activation]()]
    if layer.kind == "dropout":
        return [nn.Dropout(layer.rate)]
    if layer.kind == "batchnorm":
        cls = nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d
        # Keras momentum m (moving = m*moving + (1-m)*batch) is PyTorch momentum 1-m.
        bn = cls(in_shape[-1], eps=layer.epsilon, momentum=1.0 - layer.momentum)
        _load(bn, weight=p["gamma"], bias=p["beta"], running_mean=p["moving_mean"], running_var=p["moving_variance"])
        return [bn]
    if layer.kind == "activation":
        return [_ACTIVATIONS[layer.activation]()]
    raise ValueError(f"unknown layer {layer.kind}")


def _load(module: nn.Module, **tensors: np.ndarray) -> None:
    with torch.no_grad():
        for name, value in tensors.items():
            getattr(module, name).copy_(torch.from_numpy(np.asarray(value)))


def make_optimizer(spec: WorkloadSpec, params: Any) -> torch.optim.Optimizer:
    o = spec.optimizer
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.learning_rate, betas=(o.beta_1, o.beta_2), eps=o.epsilon)
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
            loss = F.cross_entropy(self.forward(x), y)  # autocast computes cross-entropy in float32
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
            loss = F.cross_entropy(self.forward(x), y)
        if self.xla_sync is not None:
            self.xla_sync()
        return loss

    def value(self, loss: Any) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()  # explicit: all queued kernels, the optimizer update included
        return float(loss.item())  # .item() also waits for the device (and, on XLA, runs the graph)

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

    def settings(self) -> dict[str, Any]:
        return {
            "layout": "NHWC (channels_last)" if self.channels_last else "NCHW",
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
        }


class TorchCompileSession(TorchSession):
    """``torch.compile`` of the model (default mode, inductor backend); the first step pays compilation."""

    compiled = True

    def _wrap(self, model: nn.Module) -> Any:
        import torch._dynamo

        torch._dynamo.reset()  # each build compiles afresh, so first-step time is the real compile cost
        self._graphs0 = _unique_graphs()
        return torch.compile(model)

    def retraces(self) -> int | None:
        # the first compile is expected; anything after it is a recompilation
        return max(0, _unique_graphs() - self._graphs0 - 1)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "compile_backend": "inductor", "compile_mode": "default"}


def _unique_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])
