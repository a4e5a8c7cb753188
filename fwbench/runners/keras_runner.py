"""Keras 3 runners: ``keras`` (tensorflow backend), ``keras-torch`` and ``keras-jax``; one session class.

Imported only inside a worker, whose ``KERAS_BACKEND`` the registry sets (Keras reads it once, at
import). Keras is imported in :meth:`KerasSession.setup`, after the device and thread settings that
must precede it are in the environment.

The model is a functional ``keras.Model`` of Keras's own layers, one per node of the workload graph,
channels-last, loaded with the shared initial weights through ``set_weights`` (the canonical layout is
Keras's): see :mod:`fwbench.runners.keras_model`, which also maps nodes to layers (``node_layer``) and
reads the batch-norm moving statistics (``batchnorm_stats``). It is compiled with Keras's Adam/SGD (the workload's
hyper-parameters written out) and ``SparseCategoricalCrossentropy(from_logits=True)``.

Which Keras API is measured:
- training: ``model.train_on_batch(x, y)``: Keras's own single-step API, i.e. one optimizer step per call,
  the unit every other runner times, with all of Keras's per-call work (data adaptation, metric reset,
  returning the loss as a Python number) included. ``fit`` would time epochs, not steps, and
  would need a callback inside its loop to time a step.
- inference: ``model.test_on_batch(x, y)``: Keras's compiled evaluation step (forward in inference mode
  plus the loss), so the inference loss comes from Keras's own compiled function, as in training;
  ``model(x, training=False)`` would run eagerly on the tensorflow backend. ``predict`` (accuracy)
  uses ``predict_on_batch``.
- serving (the inference scenarios): ``model.predict_on_batch(x)`` on a NumPy request, Keras's own
  single-batch inference API: it converts the batch, runs the compiled predict function (under the same
  ``jit_compile``) and returns NumPy. Its traces are counted like the train and test functions'.
- ``jit_compile`` is set explicitly, never ``"auto"`` (whose meaning depends on the machine): ``False`` on
  tensorflow (so ``keras`` pairs with ``tf-graph``, the hand-written ``tf.function`` step: the price of
  the high-level API; ``tf-xla`` is the XLA counterpart), ``True`` on jax (Keras-jax without jit runs op
  by op; ``"auto"`` also means ``True`` there), ``False`` on torch (``True`` would be ``torch.compile``,
  which Keras calls experimental). ``options.keras_jit_compile`` overrides it. Recorded in settings.

Sequences: token ids go to the device as int32 (the model's ``Input(shape=(None,), dtype="int32")``, never
cast by the dtype policy); per-token labels are ``[batch, time]`` and ``SparseCategoricalCrossentropy``'s
``sum_over_batch_size`` reduction divides by every element, i.e. the mean over batch and time, the
reference's. The model takes any length, and Keras's default tracing is kept: the tensorflow back end's
``tf.function(reduce_retracing=True)`` retraces once on a second length and then generalises the time axis;
jax's ``jit`` compiles once per distinct length. :meth:`KerasSession.retraces` counts them (the Python body
of the model's ``train_step`` / ``test_step`` runs only while being traced); the torch back end runs eagerly
(``None``). :meth:`KerasSession.settings` records which implementation Keras 3.15 picks for LSTM, GRU and
attention on this back end and device (:func:`sequence_impls`).

A finding (Keras 3.15, tensorflow back end): an ``Embedding``'s gradient is a ``tf.IndexedSlices`` with one
slice per token occurrence, and ``Adam``'s ``ops.square`` maps over the slices before ``scatter_add`` sums
them, so a token repeated in a batch gets ``sum(g_i^2)`` into Adam's second moment instead of
``(sum g_i)^2``: the jax and torch back ends (and a densified gradient) compute dense Adam. Plain Adam moves
keras's 5-step parity loss on the bundled transformer by 4e-3 (over the K-step tolerance; see
``tests/test_seq_keras.py``, ``SPARSE_ADAM_REASON``), so on this back end the runner trains a model with an
embedding with :func:`dense_gradient_adam`, which densifies that gradient first, as the raw TensorFlow
runners do. Recorded in settings as ``embedding_update``.

Precision (``options.precision``): Keras's global dtype policy, ``float32``, ``mixed_bfloat16`` or
``mixed_float16`` (float32 variables, reduced-precision compute, the loss in float32; ``compile`` wraps the
optimizer in a ``LossScaleOptimizer`` for ``mixed_float16``). TPU: the tensorflow backend builds and
compiles the model under a one-core ``TPUStrategy`` (:func:`fwbench.devices.tf_tpu_strategy`); the jax
backend uses JAX's TPU platform; the torch backend has no TPU path.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from fwbench.data import Batch
from fwbench.errors import CellSkipped
from fwbench.layers import SEQUENCE
from fwbench.runners.base import Session
from fwbench.runners.keras_model import KerasGraph, batchnorm_stats, build_graph
from fwbench.weights import Params
from fwbench.workload_spec import WorkloadSpec

DEFAULT_JIT_COMPILE = {"tensorflow": False, "jax": True, "torch": False}
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
JAX_PLATFORMS = {"cpu": "cpu", "cuda": "gpu", "tpu": "tpu"}


class KerasSession(Session):
    """Keras 3 ``train_on_batch`` / ``test_on_batch`` on the backend named by ``KERAS_BACKEND``."""

    lazy_loss = False  # train_on_batch returns host values: each step waits for its loss (windowed timing records it)

    def setup(self) -> None:
        self.backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        if self.device not in ("cpu", "cuda", "tpu"):
            raise CellSkipped(f"the Keras runners support cpu, cuda and tpu, not {self.device}")
        if self.device == "tpu" and self.backend == "torch":
            raise CellSkipped("Keras's torch backend has no TPU path; use keras (tensorflow) or keras-jax")
        self.precision = self.options.precision
        self.strategy = None
        self.threads = self.options.threads
        self.tf32 = self.options.tf32
        # Read by the backends when they load, so they must be set before `import keras`.
        if self.backend == "torch":
            os.environ["KERAS_TORCH_DEVICE"] = self.device
        elif self.backend == "jax":
            os.environ["JAX_PLATFORMS"] = self.device
            os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # share the GPU like TF's memory growth
        elif self.backend == "tensorflow":
            os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
        import keras

        if keras.backend.backend() != self.backend:
            raise RuntimeError(f"Keras loaded backend {keras.backend.backend()!r}, expected {self.backend!r}")
        self.keras = keras
        getattr(self, f"_setup_{self.backend}")()
        keras.mixed_precision.set_global_policy(POLICIES[self.precision])
        self.jit_compile = (DEFAULT_JIT_COMPILE[self.backend] if self.options.keras_jit_compile is None
                            else self.options.keras_jit_compile)

    def _setup_tensorflow(self) -> None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(self.threads)
        tf.config.threading.set_inter_op_parallelism_threads(self.threads)
        tf.config.optimizer.set_jit(False)  # XLA only through jit_compile, explicitly
        gpus = tf.config.list_physical_devices("GPU")
        if self.device == "cuda":
            if not gpus:
                raise CellSkipped(f"tensorflow {tf.__version__} sees no GPU (built with CUDA: {tf.test.is_built_with_cuda()})")
            tf.config.set_visible_devices(gpus[0], "GPU")
            tf.config.experimental.set_memory_growth(gpus[0], True)
        else:
            tf.config.set_visible_devices([], "GPU")
        if self.device == "tpu":
            from fwbench.devices import tf_tpu_strategy

            self.strategy = tf_tpu_strategy(tf)
        tf.config.experimental.enable_tensor_float_32_execution(self.tf32)

    def _setup_torch(self) -> None:
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise CellSkipped(f"torch {torch.__version__} sees no CUDA device")
        torch.set_num_threads(self.threads)
        torch.backends.cuda.matmul.allow_tf32 = self.tf32
        torch.backends.cudnn.allow_tf32 = self.tf32

    def _setup_jax(self) -> None:
        import jax

        if self.device == "tpu":
            from fwbench.devices import jax_tpu_device

            jax_tpu_device(jax)  # CellSkipped where JAX has no TPU
        try:
            jax.devices(JAX_PLATFORMS[self.device])
        except RuntimeError as exc:
            raise CellSkipped(f"jax {jax.__version__} sees no {self.device.upper()} device: {exc}") from None
        # fp32 matmuls and convolutions really in fp32 on GPUs (jax's default may use TF32).
        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if self.tf32 else "highest")

    # ------------------------------------------------------------------------------------------ model
    def build(self, spec: WorkloadSpec, params: Params) -> None:
        if self.strategy is not None:  # on a TPU, variables and the compiled step belong to the strategy
            with self.strategy.scope():
                return self._build(spec, params)
        return self._build(spec, params)

    def _build(self, spec: WorkloadSpec, params: Params) -> None:
        keras = self.keras
        self.spec = spec
        set_random_seed(keras, self.backend, spec.seed)  # dropout masks, reproducible per build
        self.graph = compiled_graph(keras, spec, params, self.jit_compile)
        self.model = self.graph.model
        self._bodies = {"train": 0, "test": 0, "predict": 0}  # Python runs of the step bodies: traces where compiled
        self.traces = {"train": 0, "test": 0, "predict": 0}  # calls that traced (predict: serve's calls only)
        for kind in self.traces:  # the compiled train/test/predict functions pick these up (make_*_function)
            setattr(self.model, f"{kind}_step", self._counted(getattr(self.model, f"{kind}_step"), kind))

    def _counted(self, step: Any, kind: str) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self._bodies[kind] += 1  # under tf.function / jax.jit, Python runs only while tracing
            return step(*args, **kwargs)

        return counted

    def _call(self, kind: str, fn: Any, batch: Any) -> Any:
        before = self._bodies[kind]
        out = fn(*batch)
        # A call that traced counts once: on tensorflow the first call traces twice (Keras creates the
        # optimizer's variables inside the first trace, and tf.function then traces again without them).
        self.traces[kind] += self._bodies[kind] != before
        return out

    def retraces(self) -> int | None:
        """Calls of the train, test and (from :meth:`serve`) predict functions that traced, after each one's
        first (None where Keras runs eagerly: the torch back end, or jax without jit)."""
        traced = self.backend == "tensorflow" or (self.backend == "jax" and self.model.jit_compile)
        if self.model.run_eagerly or not traced:  # torch: eager (torch.compile would replay the count)
            return None
        return sum(max(0, n - 1) for n in self.traces.values())

    def node_layer(self, index: int) -> Any:
        """The Keras layer of node ``index`` of ``spec.layers`` (``model.layers[0]`` is the InputLayer)."""
        return self.graph.layers[index]

    def batchnorm_stats(self) -> list[np.ndarray]:
        return batchnorm_stats(self.keras, self.graph, self.spec)

    # ------------------------------------------------------------------------------------------ steps
    def _inputs(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.int32) if self.spec.tokens else x  # token ids: the model's int32 input

    def put(self, batch: Batch) -> Any:
        x, y = batch
        ops = self.keras.ops
        # backend tensors on the device up front, so no host-to-device copy is timed
        return ops.convert_to_tensor(self._inputs(x)), ops.convert_to_tensor(y.astype(np.int32))

    def train_step(self, batch: Any) -> Any:
        return self._call("train", self.model.train_on_batch, batch)  # the loss computed before the update

    def infer_step(self, batch: Any) -> Any:
        return self._call("test", self.model.test_on_batch, batch)

    def value(self, loss: Any) -> float:
        if self.device == "cuda":  # the loss is on the host, but the update queued after it may still run
            if self.backend == "tensorflow":
                import tensorflow as tf

                tf.test.experimental.sync_devices()
            elif self.backend == "torch":
                import torch

                torch.cuda.synchronize()
            # jax: the loss and the updated state come out of one jitted computation, already finished
        return float(loss)  # Keras already returned a host number, i.e. waited for the device

    def host_input(self, x: np.ndarray) -> np.ndarray:
        """NumPy, channels-last, as ``predict_on_batch`` takes it: float32 features, int32 token ids."""
        return np.ascontiguousarray(self._inputs(x))

    def serve(self, payload: np.ndarray) -> np.ndarray:
        """``model.predict_on_batch(x)``: Keras converts the NumPy batch to a back-end tensor on the device, runs
        its compiled predict function (``tf.function`` on tensorflow, ``jax.jit`` on jax, under the model's
        ``jit_compile``; eager under ``no_grad`` on torch, ``torch.compile`` if jit_compile is asked for) and
        returns NumPy; a reduced-precision policy's logits are cast to float32."""
        return np.asarray(self._call("predict", self.model.predict_on_batch, (payload,)), dtype=np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(self._inputs(x)), dtype=np.float32)

    def peak_device_bytes(self) -> int | None:
        if self.device != "cuda":
            return None
        if self.backend == "tensorflow":
            import tensorflow as tf

            return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
        if self.backend == "torch":
            import torch

            return int(torch.cuda.max_memory_allocated())
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use")

    def settings(self) -> dict[str, Any]:
        spec = getattr(self, "spec", None)
        sequence = spec is not None and len(spec.input_shape) < 3 and any(n.kind in SEQUENCE for n in spec.layers)
        out: dict[str, Any] = {"layout": "NTC" if sequence else "NHWC", "dtype": "float32",
                               "keras_backend": self.backend,
                               "keras_api": "train_on_batch / test_on_batch", "jit_compile": self.jit_compile,
                               "tf32": self.tf32, "precision": self.precision,
                               "dtype_policy": self.keras.config.dtype_policy().name,
                               "loss_scaling": type(self.model.optimizer).__name__ if self.precision == "fp16" else None}
        model = getattr(self, "model", None)
        if model is not None and model.jit_compile != self.jit_compile:  # Keras refused XLA (a cuDNN RNN on TF)
            out["jit_compile_effective"] = model.jit_compile
        if spec is not None:
            out.update(sequence_impls(self.keras, self.backend, spec, self.device))
            if self.backend == "tensorflow" and any(n.kind == "embedding" for n in spec.layers):
                out["embedding_update"] = ("dense: the Embedding's tf.IndexedSlices gradient is summed into a dense "
                                           "one before Adam (Keras 3.15's Adam on tensorflow squares each "
                                           "occurrence of a repeated row before summing)") if spec.optimizer.name == "adam" \
                    else "sparse: tf.IndexedSlices gradient, scatter updates of the rows seen"
        if self.strategy is not None:
            out["distribution"] = f"{type(self.strategy).__name__}, {self.strategy.num_replicas_in_sync} replica(s)"
        if self.backend == "tensorflow":
            import tensorflow as tf
            from tensorflow.python.util import _pywrap_util_port  # private, but the only way to ask

            out.update(intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),
                       inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads(),
                       onednn=bool(_pywrap_util_port.IsMklEnabled()) and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0",
                       TF_ENABLE_ONEDNN_OPTS=os.environ.get("TF_ENABLE_ONEDNN_OPTS", ""),
                       xla_auto_clustering=bool(tf.config.optimizer.get_jit()),
                       TF_XLA_FLAGS=os.environ.get("TF_XLA_FLAGS", ""))
        elif self.backend == "torch":
            import torch

            out.update(intra_op_threads=torch.get_num_threads(), inter_op_threads=torch.get_num_interop_threads(),
                       mkldnn=torch.backends.mkldnn.is_available(), torch_device=os.environ["KERAS_TORCH_DEVICE"])
        else:
            import jax

            # XLA's CPU client sizes its own thread pool (all cores); jax offers no per-count setting.
            out.update(intra_op_threads=None, xla_cpu_threads="XLA default (all cores)",
                       XLA_FLAGS=os.environ.get("XLA_FLAGS", ""), jax_platform=jax.devices()[0].platform,
                       jax_default_matmul_precision=jax.config.jax_default_matmul_precision)
        return out


def set_random_seed(keras: Any, backend: str, seed: int) -> None:
    """``keras.utils.set_random_seed(seed)`` without importing tensorflow on the other back ends.

    Keras 3.15's ``set_random_seed`` also calls ``tf.random.set_seed`` whenever tensorflow is installed, so a
    keras-jax or keras-torch worker would import all of tensorflow (tens of seconds on a small CPU, and its
    thread pools) just to seed a library it does not run; off the tensorflow back end this does the rest of
    what it does: the global seed Keras's own ``SeedGenerator`` (dropout) draws from, Python's, NumPy's and
    torch's."""
    if backend == "tensorflow":
        keras.utils.set_random_seed(seed)
        return
    import random

    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if backend == "torch":
        import torch

        torch.manual_seed(seed)


def _rnn_impl(keras: Any, backend: str, kind: str, device: str) -> str:
    """Which loop Keras 3.15 runs a default ``LSTM`` / ``GRU(reset_after=True)`` through (``use_cudnn="auto"``,
    tanh/sigmoid, no mask, no unroll), read from its back-end code:

    - tensorflow: ``backend.lstm/gru`` call the CudnnRNNV3 kernel when a GPU is visible (``cudnn_ok``), and the
      layer then marks itself not XLA-compatible; otherwise ``NotImplementedError`` and the generic
      ``backend.rnn``, a ``tf.while_loop`` over the cell;
    - torch: on a CUDA device ``torch._VF.lstm/gru`` (cuDNN); on the CPU ``_fallback_lstm/_fallback_gru``, a
      Python loop over the steps with the input projections precomputed in one matmul;
    - jax: the LSTM calls ``jax.experimental.rnn.lstm`` (cuDNN) when ``jax.default_backend() == "gpu"``, else the
      generic ``backend.rnn``, a ``lax.scan`` over the cell; the GRU always runs the jax back end's own
      ``lax.scan`` over precomputed input projections (jax has no cuDNN GRU).
    """
    from keras.src import activations
    from keras.src.backend import cudnn_ok  # the back end's own test (device and arguments)

    layer = "keras.layers.LSTM" if kind == "lstm" else "keras.layers.GRU(reset_after=True)"
    args = (activations.tanh, activations.sigmoid, False, True)
    if backend == "tensorflow":
        fast = cudnn_ok(*args, **({"reset_after": True} if kind == "gru" else {}))
        how = "CudnnRNNV3 (tf)" if fast else "generic keras backend.rnn (tf.while_loop)"
    elif backend == "torch":
        fast = device == "cuda" and cudnn_ok(*args)
        how = f"torch._VF.{kind} (cuDNN)" if fast else f"keras _fallback_{kind}: a Python loop of torch steps"
    elif kind == "gru":
        fast, how = False, "keras jax backend gru: lax.scan over precomputed input projections"
    else:
        fast = cudnn_ok(*args)
        how = "jax.experimental.rnn.lstm (cuDNN)" if fast else "generic keras backend.rnn (lax.scan)"
    return f"{layer} (cuDNN: {'yes' if fast else 'no'}, {device.upper() if device != 'cpu' else 'CPU'}): {how}"


def _attention_impl(keras: Any, backend: str, spec: WorkloadSpec, device: str) -> str:
    """What ``MultiHeadAttention`` (no dropout, no scores returned) runs in Keras 3.15: ``ops.dot_product_attention``
    with ``flash_attention=None`` (decided per call), on the first attention node's shapes ``[batch, T, heads,
    key_dim]``: tensorflow has no fused kernel (einsum, mask, softmax, einsum: ``_dot_product_attention_xla``);
    torch calls ``F.scaled_dot_product_attention``, inside ``sdpa_kernel(FLASH_ATTENTION)`` where
    ``can_use_flash_attention`` says yes, else letting torch choose (recorded: ``torch._fused_sdp_choice``);
    jax calls ``jax.nn.dot_product_attention(implementation="cudnn")`` where its cuDNN flash check passes, else
    ``implementation="xla"`` (on a TPU: the Pallas splash kernel)."""
    node = next(n for n in spec.layers if n.kind == "multi_head_attention")
    dtype = keras.config.dtype_policy().compute_dtype
    shape = (spec.batch_size, spec.input_shape[0], node.heads, node.key_dim)  # BTNH, as Keras passes them
    causal = "causal" if node.causal else "not causal"
    head = "keras.layers.MultiHeadAttention -> keras.ops.dot_product_attention"
    if backend == "tensorflow":
        return f"{head} (tensorflow: einsum + softmax, no flash kernel; {causal})"
    if backend == "torch":
        import torch
        from keras.src.backend.torch.nn import _can_use_flash_attention

        dev = "cuda" if device == "cuda" else "cpu"
        q = torch.zeros(shape, dtype=getattr(torch, dtype), device=dev).transpose(1, 2)  # BNTH for torch
        flash = bool(_can_use_flash_attention(q, q, q, None, node.causal))
        if flash:
            how = "sdpa_kernel(FLASH_ATTENTION)"
        else:
            try:
                from torch.nn.attention import SDPBackend

                choice = SDPBackend(torch._fused_sdp_choice(q, q, q, None, 0.0, node.causal)).name
                how = f"torch's choice: {choice.lower()}"
            except Exception:  # a private API: the choice is then not knowable
                how = "torch's choice"
        return f"{head} -> F.scaled_dot_product_attention ({how}; {causal})"
    import jax.numpy as jnp
    from keras.src.backend.jax.nn import _can_use_flash_attention

    q = jnp.zeros(shape, dtype=dtype)
    try:
        flash = bool(_can_use_flash_attention(q, q, q, None))
    except Exception:
        flash = False
    if flash and device == "tpu":
        how = "Pallas splash attention (TPU flash)"
    else:
        how = 'implementation="cudnn" (flash)' if flash else 'implementation="xla"'
    return f"{head} -> jax.nn.dot_product_attention ({how}; {causal})"


def sequence_impls(keras: Any, backend: str, spec: WorkloadSpec, device: str) -> dict[str, str]:
    """``lstm_impl`` / ``gru_impl`` / ``attention_impl`` for the kinds the workload has."""
    kinds = {n.kind for n in spec.layers}
    out = {f"{k}_impl": _rnn_impl(keras, backend, k, device) for k in ("lstm", "gru") if k in kinds}
    if "multi_head_attention" in kinds:
        out["attention_impl"] = _attention_impl(keras, backend, spec, device)
    return out


def dense_gradient_adam(keras: Any) -> Any:
    """``keras.optimizers.Adam`` that first sums an Embedding's ``tf.IndexedSlices`` gradient into a dense one.

    Keras 3.15's Adam on the tensorflow back end squares each slice of a sparse gradient before the
    ``scatter_add`` sums repeated rows, so a token seen k times in a batch gets ``sum(g_i^2)`` instead of
    ``(sum g_i)^2`` in its second moment: not Adam, and not what the jax and torch back ends (or the raw
    TensorFlow runners, which densify too) compute. The workload defines Adam, so the runner trains with it;
    the cost is a dense update of the embedding table (its gradient is scattered into a zero table). The
    finding itself stays tested against plain ``keras.optimizers.Adam`` (``tests/test_seq_keras.py``).
    """
    import tensorflow as tf

    class DenseGradientAdam(keras.optimizers.Adam):
        def apply(self, grads: Any, trainable_variables: Any = None) -> Any:
            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
            return super().apply(grads, trainable_variables)

    return DenseGradientAdam


def compiled_graph(keras: Any, spec: WorkloadSpec, params: Params, jit_compile: bool) -> KerasGraph:
    """The workload as a compiled functional model (:mod:`fwbench.runners.keras_model`), loaded with the
    shared initial ``params``, with its node -> layer mapping.

    Optimizer hyper-parameters are set explicitly (Keras's defaults are not the workload's); the loss is
    sparse categorical cross-entropy from logits. Call it inside a strategy's scope where there is one.
    """
    graph = build_graph(keras, spec, params)
    o = spec.optimizer
    if o.name == "adam":
        adam = keras.optimizers.Adam
        if keras.backend.backend() == "tensorflow" and any(n.kind == "embedding" for n in spec.layers):
            adam = dense_gradient_adam(keras)
        opt = adam(learning_rate=o.learning_rate, beta_1=o.beta_1, beta_2=o.beta_2, epsilon=o.epsilon)
    else:
        opt = keras.optimizers.SGD(learning_rate=o.learning_rate, momentum=o.momentum)
    graph.model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        jit_compile=jit_compile)
    return graph


def compiled_model(keras: Any, spec: WorkloadSpec, params: Params, jit_compile: bool) -> Any:
    """The compiled ``keras.Model`` alone (what :mod:`fwbench.distributed.tf_rank` trains)."""
    return compiled_graph(keras, spec, params, jit_compile).model
