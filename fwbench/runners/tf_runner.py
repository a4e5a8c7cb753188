"""TensorFlow runners: ``tf-eager``, ``tf-graph`` and ``tf-xla``: one training step, wrapped three ways.

Imported only inside a worker. The network is plain TensorFlow (``tf.Variable`` + ``tf.nn`` ops;
:class:`fwbench.runners.tf_net.Net`), built from the workload's graph and loaded with the shared
initial weights, whose canonical layout (HWIO kernels, ``[in, out]`` dense, HWC flatten) *is*
TensorFlow's: no conversion, data runs NHWC. The one exception is the recurrent kinds: ``lstm``/``gru``
are ``keras.layers.LSTM``/``GRU`` called inside our own step, as TensorFlow users write them (TensorFlow
has no recurrent layer of its own; see :mod:`fwbench.runners.tf_net`). Token ids are fed as int64, never
cast by the precision modes; an embedding's ``IndexedSlices`` gradient is densified for the (dense) Keras
update rules. This module holds the optimizer, the steps and the sessions.

:func:`make_steps` writes the ``tf.GradientTape`` training step and the inference step once; the
sessions differ only in how they wrap them: called as they are (eager), through ``tf.function``
(graph: the first call traces, later calls run the graph) or ``tf.function(jit_compile=True)`` (XLA).
A Python side effect inside the step counts traces: it runs once per trace and never when the graph
runs, so :meth:`TFGraphSession.retraces` is the number of traces after the first.

Serving (the inference scenarios): :func:`make_serve` is ``net(x, training=False)`` with its logits cast to
float32, wrapped the session's way like the steps (eager; ``tf.function``, traced once per input shape, each
trace counted as ``serve``; ``tf.function(jit_compile=True)``). A request is NumPy on the host; ``serve``
puts it on the device with ``tf.constant`` and fetches the logits with ``.numpy()``, which waits for them.

The optimizers are TensorFlow's own fused kernels (``ResourceApplyAdam``, ``ResourceApplyKerasMomentum``,
``ResourceApplyGradientDescent``), which implement exactly the Keras update rules (Adam's epsilon is
added to sqrt(v) with the bias correction folded into the step size; SGD momentum ``v = m*v - lr*g``)
and which XLA compiles.

Settings (recorded per cell): intra/inter-op thread pools from ``job.options.threads``; oneDNN through
``TF_ENABLE_ONEDNN_OPTS`` (default ``1``, read by TensorFlow at import); XLA auto-clustering off, so
only ``tf-xla`` uses XLA; TF32 off unless ``options.tf32``. ``--device cpu`` hides every GPU;
``--device cuda`` runs on the first GPU with memory growth on.

Precision (``options.precision``), the Keras mixed-precision recipe written out: variables, optimizer
state and updates stay float32; ``bf16``/``fp16`` cast inputs and weights to the compute dtype in the
forward pass, batch norm and the loss compute in float32. ``fp16`` adds dynamic loss scaling with
PyTorch ``GradScaler``'s rules (:class:`LossScale`): an update whose gradients overflowed is skipped.
TPU (``tf-graph``, ``tf-xla``): variables live under a one-core ``TPUStrategy``
(:func:`fwbench.devices.tf_tpu_strategy`) and each step runs through ``strategy.run``; eager op-by-op
execution is not a TPU mode, so ``tf-eager`` is cpu/cuda only.
"""

from __future__ import annotations

import os

# TensorFlow reads this at import: set it explicitly (a user's own value wins and is recorded).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fwbench.data import Batch  # noqa: E402
from fwbench.errors import CellSkipped  # noqa: E402
from fwbench.runners.base import Session  # noqa: E402
from fwbench.runners.tf_net import Net  # noqa: E402,F401  (tf_runner.Net: the rank engines use it)
from fwbench.weights import Params  # noqa: E402
from fwbench.workload_spec import WorkloadSpec  # noqa: E402

COMPUTE_DTYPES = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}


class Optimizer(tf.Module):
    """Keras-rule Adam / SGD (with momentum) over ``variables``, through TensorFlow's fused kernels."""

    def __init__(self, spec: WorkloadSpec, variables: list[tf.Variable], dtype: tf.DType = tf.float32):
        super().__init__(name="optimizer")
        o = spec.optimizer
        self.kind = o.name
        c = lambda value: tf.constant(value, dtype)  # noqa: E731
        self.lr, self.beta_1, self.beta_2, self.epsilon, self.momentum = (
            c(o.learning_rate), c(o.beta_1), c(o.beta_2), c(o.epsilon), c(o.momentum))
        zeros = lambda: [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]  # noqa: E731
        if o.name == "adam":
            self.m, self.v = zeros(), zeros()
            # beta^t for the step being applied (t = 1 at the first step)
            self.beta_1_power = tf.Variable(1.0, dtype=dtype, trainable=False)
            self.beta_2_power = tf.Variable(1.0, dtype=dtype, trainable=False)
        elif o.momentum > 0.0:
            self.accum = zeros()

    def apply(self, grads: list[tf.Tensor], variables: list[tf.Variable]) -> None:
        if self.kind == "adam":
            b1p = self.beta_1_power.assign(self.beta_1_power * self.beta_1)
            b2p = self.beta_2_power.assign(self.beta_2_power * self.beta_2)
            for var, m, v, g in zip(variables, self.m, self.v, grads):
                tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, beta1_power=b1p,
                                             beta2_power=b2p, lr=self.lr, beta1=self.beta_1, beta2=self.beta_2,
                                             epsilon=self.epsilon, grad=g)
        elif hasattr(self, "accum"):
            for var, a, g in zip(variables, self.accum, grads):
                tf.raw_ops.ResourceApplyKerasMomentum(var=var.handle, accum=a.handle, lr=self.lr, grad=g,
                                                      momentum=self.momentum)
        else:
            for var, g in zip(variables, grads):
                tf.raw_ops.ResourceApplyGradientDescent(var=var.handle, alpha=self.lr, delta=g)


def loss_fn(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Sparse categorical cross-entropy from logits, mean over the batch (and over time for per-token
    logits ``[b, T, C]`` with labels ``[b, T]``: every position counts alike, as the reference's)."""
    logits = tf.cast(logits, tf.float32)  # mixed precision: softmax and loss in float32
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))


class LossScale(tf.Module):
    """Dynamic loss scaling with ``torch.amp.GradScaler``'s defaults, for fp16 training.

    The loss is multiplied by ``scale`` before differentiation and the gradients divided by it. If any
    gradient is not finite the update is skipped and the scale halved; after ``growth_interval``
    consecutive finite steps the scale doubles.
    """

    def __init__(self, init_scale: float = 2.0 ** 16, growth_interval: int = 2000):
        super().__init__(name="loss_scale")
        self.scale = tf.Variable(init_scale, dtype=tf.float32, trainable=False)
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.growth_interval = growth_interval

    def unscale(self, grads: list[tf.Tensor]) -> tuple[list[tf.Tensor], tf.Tensor]:
        grads = [g / self.scale for g in grads]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        return grads, finite

    def update(self, finite: tf.Tensor) -> None:
        grow = tf.logical_and(finite, self.good_steps + 1 >= self.growth_interval)
        self.scale.assign(tf.where(finite, tf.where(grow, self.scale * 2.0, self.scale), self.scale * 0.5))
        self.good_steps.assign(tf.where(tf.logical_and(finite, tf.logical_not(grow)), self.good_steps + 1,
                                        tf.zeros_like(self.good_steps)))


def make_steps(net: Net, opt: Optimizer, scaler: LossScale | None = None):
    """The training step, the inference step (both return the loss) and the forward pass, written once."""

    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(net(x, training=True), y)
            scaled = loss * scaler.scale if scaler is not None else loss
        grads = tape.gradient(scaled, net.trainable)
        # an embedding's gradient is IndexedSlices (the rows the batch read); the Keras update rules are dense
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if scaler is None:
            opt.apply(grads, net.trainable)
            return loss
        grads, finite = scaler.unscale(grads)

        def apply() -> tf.Tensor:
            opt.apply(grads, net.trainable)
            return tf.constant(True)
        tf.cond(finite, apply, lambda: tf.constant(False))  # an overflowed step changes nothing but the scale
        scaler.update(finite)
        return loss

    def infer_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return loss_fn(net(x, training=False), y)

    def forward(x: tf.Tensor) -> tf.Tensor:
        return net(x, training=False)

    return train_step, infer_step, forward


def make_serve(net: Net) -> Callable[[tf.Tensor], tf.Tensor]:
    """An inference request's computation: the forward pass in inference mode, its logits cast to float32 on
    the device (as PyTorch's ``.float()``), no loss and no labels."""

    def serve(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(net(x, training=False), tf.float32)

    return serve


class TFEagerSession(Session):
    """TensorFlow eager: the ``GradientTape`` step runs op by op from Python."""

    execution = "eager"
    jit_compile = False

    def setup(self) -> None:
        self.precision = self.options.precision
        self.strategy = None
        if self.device == "tpu":
            self._setup_tpu()
            return
        if self.device not in ("cpu", "cuda"):
            raise CellSkipped(f"the TensorFlow runners support cpu and cuda, not {self.device}")
        gpus = tf.config.list_physical_devices("GPU")
        if self.device == "cuda" and not gpus:
            raise CellSkipped(f"tensorflow {tf.__version__} sees no GPU (built with CUDA: {tf.test.is_built_with_cuda()})")
        self.tf_device = "/GPU:0" if self.device == "cuda" else "/CPU:0"
        threads = self.options.threads
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
            if self.device == "cuda":
                tf.config.set_visible_devices(gpus[0], "GPU")
                tf.config.experimental.set_memory_growth(gpus[0], True)  # share the GPU with other processes
            else:
                tf.config.set_visible_devices([], "GPU")  # cpu means cpu, even where a GPU exists
            self.runtime_configured = True
        except RuntimeError:
            # TensorFlow already ran in this process with other settings: only in-process use (tests,
            # the harness benchmark); a worker always configures a fresh runtime. Recorded in settings.
            self.runtime_configured = False
        tf.config.optimizer.set_jit(False)  # no auto-clustering: only tf-xla uses XLA, on purpose
        # fp32 means fp32: TF32 tensor-core math is off unless asked for (recorded in settings).
        tf.config.experimental.enable_tensor_float_32_execution(self.options.tf32)
        self.dtype = tf.float32
        self.compute_dtype = COMPUTE_DTYPES[self.precision]

    def _setup_tpu(self) -> None:
        if self.execution == "eager":
            raise CellSkipped("eager op-by-op execution is not a TPU mode; tf-graph and tf-xla run on TPUs")
        from fwbench.devices import tf_tpu_strategy

        self.strategy = tf_tpu_strategy(tf)
        self.tf_device = self.strategy.extended.worker_devices[0]
        self.runtime_configured = True
        tf.config.optimizer.set_jit(False)
        self.dtype, self.compute_dtype = tf.float32, COMPUTE_DTYPES[self.precision]

    def build(self, spec: WorkloadSpec, params: Params) -> None:
        self.spec = spec
        self.traces = {"train": 0, "infer": 0, "serve": 0}
        scope = self.strategy.scope() if self.strategy is not None else tf.device(self.tf_device)
        with scope:
            tf.random.set_seed(spec.seed)
            # XLA cannot compile the cuDNN recurrent op: tf-xla runs Keras's generic loop (see tf_net)
            self.net = Net(spec, params, self.dtype, self.compute_dtype, xla_grouped_conv=self.device != "cuda",
                           use_cudnn=False if self.jit_compile else "auto")
            self.opt = Optimizer(spec, self.net.trainable, self.dtype)
            self.scaler = LossScale() if self.precision == "fp16" else None
        train, infer, forward = make_steps(self.net, self.opt, self.scaler)
        serve = make_serve(self.net)
        if self.strategy is not None:  # one replica: run each step through the strategy, unwrap its value
            train, infer, forward, serve = (self._replicated(f) for f in (train, infer, forward, serve))
        self._train = self._wrap(train, "train")
        self._infer = self._wrap(infer, "infer")
        self._forward = self._wrap(forward, None)
        self._serve = self._wrap(serve, "serve")

    def _wrap(self, fn: Callable, kind: str | None) -> Callable:
        return fn

    def _replicated(self, fn: Callable) -> Callable:
        strategy = self.strategy

        def run(*args: Any) -> Any:
            return strategy.experimental_local_results(strategy.run(fn, args=args))[0]
        return run

    def _input(self, x: np.ndarray) -> tf.Tensor:
        """Features as the variables' dtype; token ids stay the integers they are (int64), for ``tf.gather``."""
        return tf.constant(x) if self.spec.tokens else tf.constant(x, dtype=self.dtype)

    def put(self, batch: Batch) -> Any:
        x, y = batch
        with tf.device(self.tf_device):
            return self._input(x), tf.constant(y)

    def train_step(self, batch: Any) -> Any:
        return self._train(*batch)

    def infer_step(self, batch: Any) -> Any:
        return self._infer(*batch)

    def value(self, loss: Any) -> float:
        if self.device == "cuda":
            # .numpy() waits only for the loss; the optimizer's updates, queued after it, must finish too
            tf.test.experimental.sync_devices()
        return float(loss.numpy())  # .numpy() waits for the device

    def host_input(self, x: np.ndarray) -> np.ndarray:
        """Host memory in TensorFlow's own layout (NHWC, as the data comes): float32 features, int64 token ids."""
        return np.ascontiguousarray(x, np.int64 if self.spec.tokens else self.dtype.as_numpy_dtype)

    def serve(self, payload: np.ndarray) -> np.ndarray:
        """The payload onto the device (``tf.constant``), ``net(x, training=False)`` run the session's way
        (eager op by op, a ``tf.function`` graph traced once per input shape, or XLA-compiled), and the float32
        logits back on the host (``.numpy()`` waits for the device)."""
        with tf.device(self.tf_device):
            return self._serve(tf.constant(payload)).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        with tf.device(self.tf_device):
            return self._forward(self._input(x)).numpy().astype(np.float32)

    def peak_device_bytes(self) -> int | None:
        if self.device != "cuda":
            return None
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])

    def batchnorm_stats(self) -> list[np.ndarray]:
        return self.net.batchnorm_stats()  # Keras's convention (biased variance); canonical order is TF's

    def grouped_conv(self) -> str | None:
        """How this session runs grouped convolutions (None: the workload has none)."""
        spec = getattr(self, "spec", None)
        if spec is None or not any(l.kind == "conv2d" and l.groups > 1 for l in spec.layers):
            return None
        if self.device == "cuda":
            return "tf.nn.conv2d (cuDNN grouped convolution)"
        if self.jit_compile:
            return "tf.nn.conv2d, compiled by XLA with the step"
        return ("tf.nn.conv2d in a nested tf.function(jit_compile=True) (XLA), as Keras's TensorFlow backend runs "
                "it: TensorFlow's CPU kernels have no grouped-convolution gradients")

    def recurrent_impl(self, kind: str) -> str | None:
        """How this session runs the workload's ``kind`` (lstm/gru) layers; None where it has none.

        Graph modes: what the traced step graphs contain (the cuDNN op or the generic ``tf.while_loop``);
        eager (nothing traced): Keras's own rule, cuDNN when a GPU is visible, as the layer decides per call.
        """
        spec = getattr(self, "spec", None)
        if spec is None or not any(l.kind == kind for l in spec.layers):
            return None
        name = {"lstm": "keras.layers.LSTM", "gru": "keras.layers.GRU(reset_after=True)"}[kind]
        cudnn = "cuDNN (CudnnRNNV3, fused)"
        generic = "generic (tf.while_loop over the Keras cell)"
        if self.jit_compile:
            return f"{name}, use_cudnn=False: {generic}, compiled by XLA (XLA cannot compile the cuDNN op)"
        seen = self.net.recurrent_impl.get(kind)
        if seen:
            ran = " and ".join(cudnn if s == "cuDNN" else generic if s == "generic" else s for s in sorted(seen))
            return f"{name}, use_cudnn='auto': {ran} (read from the traced graph)"
        if self.execution == "eager":
            gpu = bool(tf.config.list_logical_devices("GPU"))
            return f"{name}, use_cudnn='auto': " + (
                cudnn if gpu else "generic (eager: tf.while_loop steps the Keras cell from Python)")
        return f"{name}, use_cudnn='auto': not traced yet (cuDNN on a GPU, {generic} otherwise)"

    def attention_impl(self) -> str | None:
        spec = getattr(self, "spec", None)
        if spec is None or not any(l.kind == "multi_head_attention" for l in spec.layers):
            return None
        return ("tf.einsum on Keras-layout tf.Variables (projections, scaled q.k^T, tf.linalg.band_part causal "
                "mask, tf.nn.softmax, output projection)" + (", compiled by XLA" if self.jit_compile else ""))

    def settings(self) -> dict[str, Any]:
        from tensorflow.python.util import _pywrap_util_port  # private, but the only way to ask

        sequence = {key: value for key, value in (("lstm_impl", self.recurrent_impl("lstm")),
                                                  ("gru_impl", self.recurrent_impl("gru")),
                                                  ("attention_impl", self.attention_impl())) if value}
        return {
            "layout": "NHWC",
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "dtype": self.dtype.name,
            "precision": self.precision,
            "compute_dtype": self.compute_dtype.name,
            "loss_scaling": "dynamic (GradScaler rules)" if self.precision == "fp16" else None,
            "distribution": (f"TPUStrategy, {self.strategy.num_replicas_in_sync} replica(s)"
                             if self.strategy is not None else None),
            "tf32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
            "onednn": bool(_pywrap_util_port.IsMklEnabled()) and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0",
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", ""),
            "execution": self.execution,
            "jit_compile": self.jit_compile,
            "xla_auto_clustering": bool(tf.config.optimizer.get_jit()),
            "TF_XLA_FLAGS": os.environ.get("TF_XLA_FLAGS", ""),
            "tf_device": self.tf_device,
            "runtime_configured": self.runtime_configured,
            "optimizer_kernels": "ResourceApply* (Keras update rules)",
            "grouped_conv": self.grouped_conv(),
            **sequence,
        }


class TFGraphSession(TFEagerSession):
    """The same step under ``tf.function``: the first call traces (first-step time), later calls run the graph."""

    execution = "tf.function"

    def _wrap(self, fn: Callable, kind: str | None) -> Callable:
        if kind is None:
            return tf.function(fn, jit_compile=self.jit_compile)

        def counted(*args: Any) -> Any:
            self.traces[kind] += 1  # Python runs only while tracing: one increment per (re)trace
            return fn(*args)

        return tf.function(counted, jit_compile=self.jit_compile)

    def retraces(self) -> int | None:
        return sum(max(0, n - 1) for n in self.traces.values())


class TFXLASession(TFGraphSession):
    """The same step under ``tf.function(jit_compile=True)``: XLA compiles it on the first call."""

    execution = "tf.function(jit_compile=True)"
    jit_compile = True
