"""Inside a worker: find the accelerator a framework can use, choose how to reach a TPU, describe the device.

Each function takes the framework module (or an importer) as an argument, defaulting to the real one,
so that the detection and the strategy selection are testable with fakes on a machine without a GPU
or a TPU. Where the device is absent they raise :class:`~fwbench.errors.CellSkipped` with a reason
a user can act on; they never import a framework the cell does not use.

TPU paths (``--device tpu``):
- TensorFlow (and Keras on TensorFlow): ``TPUClusterResolver`` -> ``experimental_connect_to_cluster``
  -> ``initialize_tpu_system`` -> ``TPUStrategy`` (:func:`tf_tpu_strategy`);
- Keras on JAX: JAX's own TPU backend, used where ``jax.devices("tpu")`` finds one (:func:`jax_tpu_device`);
- PyTorch: ``torch_xla`` where it is installed (:func:`torch_xla_device`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from fwbench.errors import CellSkipped, brief

TPU_BACKENDS = {"tensorflow": "TPUStrategy (TPUClusterResolver)", "jax": "JAX TPU backend", "torch": "torch_xla"}


# ------------------------------------------------------------------------------------------------- TPU
def select_tpu_backend(framework: str, find_spec: Callable[[str], Any] = importlib.util.find_spec) -> str:
    """How a runner of ``framework`` reaches a TPU (see :data:`TPU_BACKENDS`); raises ``CellSkipped`` if it cannot."""
    if framework not in TPU_BACKENDS:
        raise CellSkipped(f"no TPU path for {framework}")
    if framework == "torch" and find_spec("torch_xla") is None:
        raise CellSkipped("PyTorch reaches TPUs through torch_xla, which is not installed (pip install torch_xla)")
    return TPU_BACKENDS[framework]


def tpu_name(env: Mapping[str, str] = os.environ, dev: Path = Path("/dev")) -> str:
    """The ``tpu`` argument for ``TPUClusterResolver``: ``$TPU_NAME``; ``"local"`` on a TPU VM; else ``""``."""
    if env.get("TPU_NAME"):
        return env["TPU_NAME"]
    if list(dev.glob("accel*")) or list(dev.glob("vfio/[0-9]*")):
        return "local"  # the chips are attached to this host (Cloud TPU VM)
    return ""  # the resolver then falls back to its own discovery (e.g. Colab's COLAB_TPU_ADDR)


def tf_tpu_strategy(tf: Any = None, name: str | None = None, replicas: int | None = 1) -> Any:
    """Connect to the TPU and return a ``tf.distribute.TPUStrategy``; ``CellSkipped`` where there is none.

    ``replicas=1`` (the default) places the strategy on *one* TPU core, so that a cell's batch is not split
    across cores and it compares with single-device runners; ``None`` uses every core.
    """
    if tf is None:
        import tensorflow as tf
    name = tpu_name() if name is None else name
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        tf.config.experimental_connect_to_cluster(resolver)
        topology = tf.tpu.experimental.initialize_tpu_system(resolver)
        if replicas is None:
            strategy = tf.distribute.TPUStrategy(resolver)
        else:
            assignment = tf.tpu.experimental.DeviceAssignment.build(topology, num_replicas=replicas)
            strategy = tf.distribute.TPUStrategy(resolver, experimental_device_assignment=assignment)
    except Exception as exc:  # ValueError (no TPU name), NotFoundError (no TPU devices), RuntimeError ...
        raise CellSkipped(f"TensorFlow found no TPU (TPUClusterResolver(tpu={name!r}): {brief(exc, 300)})") from None
    if not tf.config.list_logical_devices("TPU"):
        raise CellSkipped("TensorFlow initialised the TPU system but lists no TPU device")
    return strategy


def jax_tpu_device(jax: Any = None) -> Any:
    """The first TPU device JAX sees; ``CellSkipped`` where JAX has no TPU backend."""
    if jax is None:
        import jax
    try:
        found = jax.devices("tpu")
    except RuntimeError as exc:  # "Unknown backend tpu" / "no platforms that are instances of tpu"
        raise CellSkipped(f"JAX sees no TPU ({brief(exc, 300)})") from None
    if not found:
        raise CellSkipped("JAX sees no TPU")
    return found[0]


def torch_xla_device(importer: Callable[[str], Any] = importlib.import_module) -> tuple[Any, Callable[[], None]]:
    """``(device, sync)`` for PyTorch on a TPU through torch_xla; ``sync()`` cuts and launches the lazy graph."""
    try:
        xla = importer("torch_xla")
        runtime = importer("torch_xla.runtime")
    except ImportError:
        raise CellSkipped("PyTorch reaches TPUs through torch_xla, which is not installed (pip install torch_xla)") from None
    try:
        kind = runtime.device_type()
        device = xla.device()
    except Exception as exc:
        raise CellSkipped(f"torch_xla found no TPU ({brief(exc, 300)})") from None
    if kind != "TPU":
        raise CellSkipped(f"torch_xla's device is {kind}, not a TPU (set PJRT_DEVICE=TPU on a TPU host)")
    return device, xla.sync


# ------------------------------------------------------------------------------------------- describing
def accelerator_info(framework: str, device: str) -> dict[str, Any]:
    """Name, compute capability and the CUDA/cuDNN versions the framework was built with (recorded per cell)."""
    if device == "cpu":
        return {}
    try:
        if framework == "torch" and device == "cuda":
            import torch

            major, minor = torch.cuda.get_device_capability()
            return {"name": torch.cuda.get_device_name(), "compute_capability": f"{major}.{minor}",
                    "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                    "devices": torch.cuda.device_count()}
        if framework == "tensorflow":
            import tensorflow as tf

            build = tf.sysconfig.get_build_info()
            kind = "GPU" if device == "cuda" else "TPU"
            found = tf.config.list_physical_devices(kind) if kind == "GPU" else tf.config.list_logical_devices(kind)
            details = tf.config.experimental.get_device_details(found[0]) if found and kind == "GPU" else {}
            cc = details.get("compute_capability")
            return {"name": details.get("device_name", kind), "devices": len(found),
                    "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
                    "cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version")}
        if framework == "jax":
            import jax

            found = jax.devices({"cuda": "gpu"}.get(device, device))
            return {"name": found[0].device_kind, "devices": len(found), "platform": found[0].platform}
        if framework == "torch" and device == "tpu":
            import torch_xla.runtime as xr

            return {"name": f"TPU via torch_xla ({xr.device_type()})", "devices": xr.global_runtime_device_count()}
    except Exception as exc:  # description is best-effort: never fail a measured cell over it
        return {"error": brief(exc, 300)}
    return {}


def device_barrier(framework: str, device: str) -> Callable[[], None] | None:
    """A function that waits until *all* queued device work is done, or ``None`` where there is none to call.

    On the CPU the frameworks execute each op before returning, so the barrier is a no-op.
    """
    if device == "cpu":
        return lambda: None
    if framework == "torch" and device == "cuda":
        import torch

        return torch.cuda.synchronize
    if framework == "tensorflow":
        import tensorflow as tf

        return tf.test.experimental.sync_devices
    return None  # JAX has no device-wide barrier (only per-array block_until_ready); torch_xla syncs per step
