"""The runner registry: metadata only, readable in the parent without importing any framework."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import KW_ONLY, dataclass

from fwbench.errors import UsageError
from fwbench.scenarios import INFERENCE, SCENARIOS  # what a cell measures (docs/scenarios.md)

# The array libraries runners compute with (``none``: no arithmetic, the fake runner; ``runtime``: a deployed
# inference runtime with its own kernels, such as ONNX Runtime or LiteRT, which no matmul calibration covers).
FRAMEWORKS = ("torch", "tensorflow", "jax", "runtime", "none")


@dataclass(frozen=True)
class EngineInfo:
    """How a runner trains data-parallel: ``impl`` is the rank-side ``module:Class``, ``launcher`` the way
    ranks are started (``torchrun`` or ``tf_config``), ``name`` what results record as the engine."""

    name: str
    impl: str
    launcher: str


@dataclass(frozen=True)
class RunnerInfo:
    """One runner: a framework in one execution mode.

    ``impl`` is ``"module:Class"`` of its :class:`fwbench.runners.base.Session`, imported only in a worker.
    ``modules`` are the importable modules it needs (checked with ``find_spec``, never imported here);
    ``dists`` the distributions whose versions results record.
    ``framework`` is the array library it computes with (one of :data:`FRAMEWORKS`; Keras: its backend),
    which picks the device probes, barrier and matmul calibration; ``engine`` its data-parallel engine.
    """

    name: str
    family: str
    mode: str
    impl: str
    modules: tuple[str, ...]
    dists: tuple[str, ...]
    _: KW_ONLY
    framework: str
    engine: EngineInfo | None = None
    devices: tuple[str, ...] = ("cpu", "cuda")
    env: tuple[tuple[str, str], ...] = ()
    hidden: bool = False
    scenarios: tuple[str, ...] = SCENARIOS

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise ValueError(f"runner {self.name}: framework {self.framework!r} is not one of {FRAMEWORKS}")
        if not set(self.scenarios) <= set(SCENARIOS):
            raise ValueError(f"runner {self.name}: scenarios {self.scenarios!r} are not among {SCENARIOS}")

    @property
    def trains(self) -> bool:
        return "train" in self.scenarios

    def scenario_problem(self, scenario: str) -> str | None:
        """Why this runner cannot run ``scenario`` (a cell asking for it is skipped with this reason), or None."""
        if scenario in self.scenarios:
            return None
        if scenario == "train":
            return (f"{self.name} cannot train: it runs an exported model for inference only; "
                    f"use --scenario {'|'.join(self.scenarios)}")
        return f"{self.name} does not run the {scenario} scenario (runs: {', '.join(self.scenarios)})"

    def missing(self) -> list[str]:
        """Modules this runner needs that are not installed (empty when available)."""
        return [m for m in self.modules if importlib.util.find_spec(m) is None]

    def versions(self) -> dict[str, str]:
        out = {}
        for d in self.dists:
            try:
                out[d] = importlib.metadata.version(d)
            except importlib.metadata.PackageNotFoundError:
                pass
        return out


RUNNERS: dict[str, RunnerInfo] = {}


def register(info: RunnerInfo) -> RunnerInfo:
    RUNNERS[info.name] = info
    return info


# Families: `--framework NAME` selects every runner of that family.
FAMILIES = ("torch", "tensorflow", "keras", "runtime", "fake")

_MWMS = "tf.distribute.MultiWorkerMirroredStrategy (TF_CONFIG)"
_TF_RANK = "fwbench.distributed.tf_rank"

register(RunnerInfo("torch", "torch", "eager (dynamic graph)", "fwbench.runners.torch_runner:TorchSession",
                    ("torch",), ("torch",), framework="torch", devices=("cpu", "cuda", "tpu"),  # tpu: torch_xla
                    engine=EngineInfo("torch.nn.parallel.DistributedDataParallel (torchrun)",
                                      "fwbench.distributed.torch_rank:TorchDDP", "torchrun")))
register(RunnerInfo("torch-compile", "torch", "torch.compile (compiled graph)",
                    "fwbench.runners.torch_runner:TorchCompileSession", ("torch",), ("torch",), framework="torch",
                    engine=EngineInfo("torch.compile(DistributedDataParallel) (torchrun)",
                                      "fwbench.distributed.torch_rank:TorchDDPCompile", "torchrun")))
register(RunnerInfo("tf-eager", "tensorflow", "eager GradientTape step (dynamic)",
                    "fwbench.runners.tf_runner:TFEagerSession", ("tensorflow",), ("tensorflow",),
                    framework="tensorflow",
                    engine=EngineInfo(f"{_MWMS}, eager step", f"{_TF_RANK}:TFMultiWorkerEager", "tf_config")))
register(RunnerInfo("tf-graph", "tensorflow", "tf.function (static graph)",
                    "fwbench.runners.tf_runner:TFGraphSession", ("tensorflow",), ("tensorflow",),
                    framework="tensorflow", devices=("cpu", "cuda", "tpu"),  # tpu: one-core TPUStrategy
                    engine=EngineInfo(f"{_MWMS}, tf.function step", f"{_TF_RANK}:TFMultiWorkerGraph", "tf_config")))
register(RunnerInfo("tf-xla", "tensorflow", "tf.function(jit_compile=True) (XLA)",
                    "fwbench.runners.tf_runner:TFXLASession", ("tensorflow",), ("tensorflow",),
                    framework="tensorflow", devices=("cpu", "cuda", "tpu"),  # tpu: one-core TPUStrategy
                    engine=EngineInfo(f"{_MWMS}, tf.function(jit_compile=True) step",
                                      f"{_TF_RANK}:TFMultiWorkerXLA", "tf_config")))
register(RunnerInfo("keras", "keras", "Keras 3 train_on_batch, tensorflow backend",
                    "fwbench.runners.keras_runner:KerasSession", ("keras", "tensorflow"), ("keras", "tensorflow"),
                    framework="tensorflow", devices=("cpu", "cuda", "tpu"),  # tpu: TPUStrategy
                    env=(("KERAS_BACKEND", "tensorflow"),),
                    engine=EngineInfo(f"{_MWMS}, Keras Model.train_on_batch", f"{_TF_RANK}:KerasMultiWorker",
                                      "tf_config")))
register(RunnerInfo("keras-torch", "keras", "Keras 3 train_on_batch, torch backend",
                    "fwbench.runners.keras_runner:KerasSession", ("keras", "torch"), ("keras", "torch"),
                    framework="torch", env=(("KERAS_BACKEND", "torch"),)))
register(RunnerInfo("keras-jax", "keras", "Keras 3 train_on_batch, jax backend (XLA)",
                    "fwbench.runners.keras_runner:KerasSession", ("keras", "jax"), ("keras", "jax", "jaxlib"),
                    framework="jax", devices=("cpu", "cuda", "tpu"),  # tpu: JAX's TPU platform
                    env=(("KERAS_BACKEND", "jax"),)))
# Deployed runtimes: inference only, on an artifact exported from the same shared weights (in a separate
# process, cached per run; see fwbench/runners/artifacts.py). `modules` include the exporter's framework.
register(RunnerInfo("onnxruntime", "runtime", "ONNX Runtime on the torch.onnx export",
                    "fwbench.runners.onnx_runtime:OnnxRuntimeSession", ("onnxruntime", "onnx", "torch"),
                    ("onnxruntime", "onnx", "onnxscript", "torch"), framework="runtime", devices=("cpu", "cuda"),
                    scenarios=INFERENCE))
register(RunnerInfo("tflite", "runtime", "LiteRT (TFLite) interpreter on the TFLite converter's model",
                    "fwbench.runners.tflite_runtime:TFLiteSession", ("tensorflow",),
                    ("ai-edge-litert", "tensorflow"), framework="runtime", devices=("cpu",), scenarios=INFERENCE))
register(RunnerInfo("torch-export", "runtime", "torch.export program compiled ahead of time by AOTInductor",
                    "fwbench.runners.aoti_runtime:AOTInductorSession", ("torch",), ("torch",), framework="torch",
                    devices=("cpu", "cuda"), scenarios=INFERENCE))
register(RunnerInfo("openvino", "runtime", "OpenVINO on the torch.onnx export (optional extra)",
                    "fwbench.runners.openvino_runtime:OpenVINOSession", ("openvino", "onnx", "torch"),
                    ("openvino", "onnx", "torch"), framework="runtime", devices=("cpu",), scenarios=INFERENCE))
register(RunnerInfo("fake", "fake", "no framework (deterministic test double)",
                    "fwbench.runners.fake_runner:FakeSession", (), (), framework="none", devices=("cpu",),
                    hidden=True))

def select(frameworks: list[str], runners: list[str], scenario: str = "train") -> list[RunnerInfo]:
    """Runners named by ``--framework`` (families, or ``all``) and ``--runner`` (exact names), in registry order.

    ``all`` means every installed, non-hidden runner that runs ``scenario`` (so a training run leaves the
    inference-only runtimes out, and an inference run takes them in). A family or runner named explicitly is
    taken as asked; a cell its runner cannot run is then skipped with the reason. Raises :class:`UsageError`
    listing valid names.
    """
    chosen: list[str] = []
    for f in frameworks:
        if f == "all":
            chosen += [r.name for r in RUNNERS.values()
                       if not r.hidden and not r.missing() and scenario in r.scenarios]
        elif f in FAMILIES:
            chosen += [r.name for r in RUNNERS.values() if r.family == f]
        else:
            raise UsageError(f"unknown framework {f!r}; choose from: all, {', '.join(FAMILIES)}")
    for r in runners:
        if r not in RUNNERS:
            raise UsageError(f"unknown runner {r!r}; choose from: {', '.join(RUNNERS)}")
        chosen.append(r)
    order = list(RUNNERS)
    return [RUNNERS[n] for n in sorted(set(chosen), key=order.index)]
