"""The runner registry: metadata only, readable in the parent without importing any framework."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

from fwbench.errors import UsageError

DEVICES = ("cpu", "cuda", "tpu")


@dataclass(frozen=True)
class RunnerInfo:
    """One runner: a framework in one execution mode.

    ``impl`` is ``"module:Class"`` of its :class:`fwbench.runners.base.Session`, imported only in a worker.
    ``modules`` are the importable modules it needs (checked with ``find_spec``, never imported here);
    ``dists`` the distributions whose versions results record.
    """

    name: str
    family: str
    mode: str
    impl: str
    modules: tuple[str, ...]
    dists: tuple[str, ...]
    devices: tuple[str, ...] = ("cpu", "cuda")
    env: tuple[tuple[str, str], ...] = ()
    hidden: bool = False

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
FAMILIES = ("torch", "tensorflow", "keras", "fake")

register(RunnerInfo("torch", "torch", "eager (dynamic graph)", "fwbench.runners.torch_runner:TorchSession",
                    ("torch",), ("torch",), devices=("cpu", "cuda", "tpu")))  # tpu through torch_xla
register(RunnerInfo("torch-compile", "torch", "torch.compile (compiled graph)",
                    "fwbench.runners.torch_runner:TorchCompileSession", ("torch",), ("torch",)))
register(RunnerInfo("tf-eager", "tensorflow", "eager GradientTape step (dynamic)",
                    "fwbench.runners.tf_runner:TFEagerSession", ("tensorflow",), ("tensorflow",)))
register(RunnerInfo("tf-graph", "tensorflow", "tf.function (static graph)",
                    "fwbench.runners.tf_runner:TFGraphSession", ("tensorflow",), ("tensorflow",),
                    devices=("cpu", "cuda", "tpu")))  # tpu: one-core TPUStrategy
register(RunnerInfo("tf-xla", "tensorflow", "tf.function(jit_compile=True) (XLA)",
                    "fwbench.runners.tf_runner:TFXLASession", ("tensorflow",), ("tensorflow",),
                    devices=("cpu", "cuda", "tpu")))  # tpu: one-core TPUStrategy
register(RunnerInfo("keras", "keras", "Keras 3 train_on_batch, tensorflow backend",
                    "fwbench.runners.keras_runner:KerasSession", ("keras", "tensorflow"), ("keras", "tensorflow"),
                    devices=("cpu", "cuda", "tpu"), env=(("KERAS_BACKEND", "tensorflow"),)))  # tpu: TPUStrategy
register(RunnerInfo("keras-torch", "keras", "Keras 3 train_on_batch, torch backend",
                    "fwbench.runners.keras_runner:KerasSession", ("keras", "torch"), ("keras", "torch"),
                    env=(("KERAS_BACKEND", "torch"),)))
register(RunnerInfo("keras-jax", "keras", "Keras 3 train_on_batch, jax backend (XLA)",
                    "fwbench.runners.keras_runner:KerasSession", ("keras", "jax"), ("keras", "jax", "jaxlib"),
                    devices=("cpu", "cuda", "tpu"), env=(("KERAS_BACKEND", "jax"),)))  # tpu: JAX's TPU platform
register(RunnerInfo("fake", "fake", "no framework (deterministic test double)",
                    "fwbench.runners.fake_runner:FakeSession", (), (), devices=("cpu",), hidden=True))


def select(frameworks: list[str], runners: list[str]) -> list[RunnerInfo]:
    """Runners named by ``--framework`` (families, or ``all``) and ``--runner`` (exact names), in registry order.

    ``all`` means every installed, non-hidden runner. Raises :class:`UsageError` listing valid names.
    """
    chosen: list[str] = []
    for f in frameworks:
        if f == "all":
            chosen += [r.name for r in RUNNERS.values() if not r.hidden and not r.missing()]
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
