"""TensorFlow ranks: ``tf.distribute.MultiWorkerMirroredStrategy`` over the workers named in ``TF_CONFIG``.

The launcher gives each rank a ``TF_CONFIG`` listing every worker's ``host:port`` and its own index; the
strategy starts the rank's gRPC server and joins the others (collective ops: RING over gRPC on CPU, NCCL on
GPUs). Each worker holds one replica.

``tf-eager``, ``tf-graph`` and ``tf-xla`` train the network of the TF runners
(:mod:`fwbench.runners.tf_runner`: the same ``tf.Variable``s from the shared weights, the same Keras-rule
fused optimizer kernels). The variables are the rank's own (every rank starts from the same shared
weights); inside ``strategy.run`` the step averages the gradients over all replicas with the strategy's
``all_reduce`` before applying them, which is what ``MirroredVariable`` updates do. ``tf-eager`` calls
``strategy.run`` from Python, ``tf-graph`` wraps it in ``tf.function``, ``tf-xla`` also compiles the
forward/backward pass and the update with XLA around the all-reduce (XLA compiles collectives only for
NCCL). ``keras`` builds a Keras model under ``strategy.scope()`` and trains it with ``train_on_batch``:
Keras scales the loss and all-reduces the gradients itself.

TensorFlow's reduce ops are SUM and MEAN only; a maximum over ranks is taken from a gather.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from fwbench.runners import tf_runner  # sets TF_ENABLE_ONEDNN_OPTS before TensorFlow loads
from fwbench.data import Batch
from fwbench.distributed.rank import RankEngine
from fwbench.errors import CellSkipped
from fwbench.runners.keras_runner import compiled_model
from fwbench.weights import Params
from fwbench.workload_spec import WorkloadSpec

tf = tf_runner.tf


class TFMultiWorker(RankEngine):
    """MultiWorkerMirroredStrategy with the TF runners' network; the step wrapping is the subclass's."""

    execution = "eager"

    def setup(self) -> None:
        cfg = json.loads(os.environ["TF_CONFIG"])
        self.local_rank = int(os.environ.get("FWBENCH_LOCAL_RANK", "0"))
        self.node_rank = int(os.environ.get("FWBENCH_NODE_RANK", "0"))
        threads = self.job.options.threads
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        tf.config.optimizer.set_jit(False)
        gpus = tf.config.list_physical_devices("GPU")
        impl = tf.distribute.experimental.CommunicationImplementation
        if self.device == "cuda":
            if len(gpus) <= self.local_rank:
                raise CellSkipped(f"local rank {self.local_rank} needs GPU {self.local_rank}; "
                                  f"tensorflow sees {len(gpus)}")
            tf.config.set_visible_devices(gpus[self.local_rank], "GPU")
            tf.config.experimental.set_memory_growth(gpus[self.local_rank], True)
            self.implementation, self.tf_device = impl.NCCL, "/GPU:0"
        elif self.device == "cpu":
            tf.config.set_visible_devices([], "GPU")
            self.implementation, self.tf_device = impl.RING, "/CPU:0"
        else:
            raise CellSkipped(f"MultiWorkerMirroredStrategy runs here on cpu and cuda, not {self.device}")
        tf.config.experimental.enable_tensor_float_32_execution(self.job.options.tf32)
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=self.implementation, timeout_seconds=float(self.run.get("collective_timeout_s", 600)))
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        self.world_size = int(self.strategy.num_replicas_in_sync)
        self.rank = int(cfg["task"]["index"])
        # tf.identity places the value on the replica's device: an input from outside has none to reduce to
        reduce = lambda v: tf.distribute.get_replica_context().all_reduce(  # noqa: E731
            tf.distribute.ReduceOp.SUM, tf.identity(v))
        self._sum = tf.function(lambda v: self.strategy.run(reduce, args=(v,)))

    def _local(self, value: Any) -> Any:
        return self.strategy.experimental_local_results(value)[0]

    def build(self, spec: WorkloadSpec, params: Params) -> None:
        self.tokens = spec.tokens
        with tf.device(self.tf_device):
            tf.random.set_seed(spec.seed)
            net = tf_runner.Net(spec, params, tf.float32)
            opt = tf_runner.Optimizer(spec, net.trainable, tf.float32)

        replica_step = self._replica_step(net, opt)
        self._step = self._wrap(lambda x, y: self.strategy.run(replica_step, args=(x, y)))

    def _replica_step(self, net: Any, opt: Any) -> Any:
        def replica_step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = tf_runner.loss_fn(net(x, training=True), y)  # mean over this rank's batch
            grads = tape.gradient(loss, net.trainable)
            # an embedding's gradient is IndexedSlices; densify it for the all-reduce and the dense update rules
            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
            grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, grads)
            opt.apply(grads, net.trainable)
            return loss

        return replica_step

    def _wrap(self, fn: Any) -> Any:
        return fn

    def put(self, batch: Batch) -> Any:
        x, y = batch
        with tf.device(self.tf_device):  # token ids stay integers
            return tf.constant(x) if self.tokens else tf.constant(x, tf.float32), tf.constant(y)

    def train_step(self, batch: Any) -> Any:
        return self._step(*batch)

    def value(self, loss: Any) -> float:
        return float(self._local(loss).numpy())

    def all_reduce(self, values: list[float], op: str) -> list[float]:
        if op == "max":
            return np.max(np.array(self.gather(list(values))), axis=0).tolist()
        return self._local(self._sum(tf.constant(values, tf.float64))).numpy().tolist()

    def gather(self, row: list[float]) -> list[list[float]]:
        table = np.zeros((self.world_size, len(row)), np.float64)
        table[self.rank] = row
        return self._local(self._sum(tf.constant(table))).numpy().tolist()

    def info(self) -> dict[str, Any]:
        return {"backend": f"collective ops ({self.implementation.name})",
                "engine": "tf.distribute.MultiWorkerMirroredStrategy",
                "settings": {"intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                             "dtype": "float32", "layout": "NHWC", "execution": self.execution,
                             "tensorflow": tf.__version__}}


class TFMultiWorkerEager(TFMultiWorker):
    execution = "eager"


class TFMultiWorkerGraph(TFMultiWorker):
    execution = "tf.function"

    def _wrap(self, fn: Any) -> Any:
        return tf.function(fn)


class KerasMultiWorker(TFMultiWorker):
    """Keras 3 (tensorflow backend): a ``keras.Sequential`` built and compiled under ``strategy.scope()``,
    trained with ``train_on_batch``; Keras scales the loss by the replica count and its optimizer all-reduces
    the gradients (``_all_reduce_sum_gradients``), so no fwbench code touches them."""

    execution = "keras train_on_batch"

    def setup(self) -> None:
        super().setup()
        import keras

        if keras.backend.backend() != "tensorflow":
            raise CellSkipped(f"MultiWorkerMirroredStrategy needs Keras's tensorflow backend, not "
                              f"{keras.backend.backend()}")
        self.keras = keras

    def build(self, spec: WorkloadSpec, params: Params) -> None:
        keras = self.keras
        with self.strategy.scope():
            keras.utils.set_random_seed(spec.seed)
            model = compiled_model(keras, spec, params, jit_compile=False)
        self.model = model

    def put(self, batch: Batch) -> Any:
        x, y = batch
        with tf.device(self.tf_device):  # token ids stay integers
            x = tf.constant(x.astype(np.int32)) if x.dtype.kind == "i" else tf.constant(x, tf.float32)
            return x, tf.constant(y.astype(np.int32))

    def train_step(self, batch: Any) -> Any:
        try:
            return self.model.train_on_batch(*batch)  # waits for the step and returns the loss as a number
        except ValueError as exc:
            if "Invalid reduction dimension" not in str(exc):
                raise
            # Keras 3 reduces its scalar logs with strategy.reduce(MEAN, axis=0) on more than one worker
            raise RuntimeError("Keras 3 cannot train under MultiWorkerMirroredStrategy with more than one worker: "
                               "reduce_per_replica fails on its scalar loss (tensorflow/tensorflow#72388)") from exc

    def value(self, loss: Any) -> float:
        return float(loss)


class TFMultiWorkerXLA(TFMultiWorkerGraph):
    """XLA compiles the rank's computation: the forward/backward pass and the optimizer update are two
    ``tf.function(jit_compile=True)`` functions. The all-reduce between them stays a TensorFlow collective:
    XLA compiles collectives only for NCCL (``Only compiling NCCL/auto collective is supported, got: ring``)."""

    execution = "tf.function step, forward/backward and update under jit_compile=True"

    def _replica_step(self, net: Any, opt: Any) -> Any:
        @tf.function(jit_compile=True)
        def loss_and_grads(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = tf_runner.loss_fn(net(x, training=True), y)
            return loss, tape.gradient(loss, net.trainable)

        @tf.function(jit_compile=True)
        def update(grads: Any) -> None:
            opt.apply(grads, net.trainable)

        def replica_step(x: Any, y: Any) -> Any:
            loss, grads = loss_and_grads(x, y)
            grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, grads)
            update(grads)
            return loss

        return replica_step
