"""Deployment artifacts (ONNX, TFLite, AOTInductor package) exported from the shared weights, cached per run.

A deployed runtime serves a file, not a framework's model object, so the file is made once and loaded by
every cell that needs it. The export runs in a child process (``python -m fwbench.runners.artifacts
REQUEST.json``) so that the serving worker never imports the exporting framework: ONNX Runtime, LiteRT and
OpenVINO then serve without torch or TensorFlow in the process, as a deployment would (AOTInductor's
runtime is torch itself). The child builds the network through the runners' own sessions (``torch`` for
ONNX and AOTInductor, ``tf-graph`` for TFLite), loaded with the weights the worker passes it, so the exported
network and its weight conversion are exactly those that are timed; it exports at a static batch
(``spec.batch_size``), in inference mode, with dropout removed, in float32, without quantization.

Cache: the folder ``$FWBENCH_ARTIFACTS`` (a run sets it to its own temp folder; created if missing), else
one fresh temp folder per process. A file is named by a hash of what determines it (the network without
names, timing, optimizer or dropout; the weights; format; batch; precision; device where the artifact is
compiled for one; the exporter's framework version), with a JSON sidecar (``export_s``, ``exporter``,
versions, ``artifact_bytes``). An ``fcntl`` lock per artifact keeps two processes from exporting it at once.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fwbench.layout import nhwc_to_nchw
from fwbench.weights import Params
from fwbench.workload_spec import WorkloadSpec

# format -> (file suffix, the framework that exports it, whether the file is compiled for one device)
FORMATS = {"onnx": (".onnx", "torch", False), "tflite": (".tflite", "tensorflow", False),
           "aoti": (".pt2", "torch", True)}
# Fields of a workload that do not change its inference network (dropout is removed before hashing).
_NOT_THE_NETWORK = ("name", "description", "timing", "source", "mode", "optimizer", "target", "parity_steps",
                    "parity_learning_rate", "distributed", "test_fraction")
_CACHE: list[Path] = []  # this process's fresh temp folder, when $FWBENCH_ARTIFACTS is not set


class ArtifactError(RuntimeError):
    """An export that failed; the message is one line: the format and the child's last error line."""


@dataclass(frozen=True)
class Artifact:
    """An exported file and its sidecar's record (``export_s``, ``exporter``, ``versions``, ``artifact_bytes`` ...)."""

    path: Path
    meta: dict[str, Any]


def cache_dir() -> Path:
    """``$FWBENCH_ARTIFACTS`` (created if missing), else one temp folder for this process."""
    env = os.environ.get("FWBENCH_ARTIFACTS")
    if env:
        path = Path(env)
        path.mkdir(parents=True, exist_ok=True)
        return path
    if not _CACHE:
        _CACHE.append(Path(tempfile.mkdtemp(prefix="fwbench-artifacts-")))
    return _CACHE[0]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def params_digest(params: Params) -> str:
    """A hash of the weights (names, shapes, dtypes, bytes), so a cached artifact is never of other weights."""
    h = hashlib.sha256()
    for i, p in enumerate(params):
        for name in sorted(p):
            a = np.ascontiguousarray(p[name])
            h.update(f"{i}/{name}/{a.dtype.str}/{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def artifact_key(spec: WorkloadSpec, fmt: str, precision: str, device: str, params: Params) -> str:
    """The hash an artifact's file is named by: everything that determines its bytes, nothing else."""
    _, framework, per_device = FORMATS[fmt]
    network = {k: v for k, v in spec.without_dropout().to_dict().items() if k not in _NOT_THE_NETWORK}
    key = {"network": network, "format": fmt, "batch": spec.batch_size, "precision": precision,
           "device": device if per_device else None, "exporter": f"{framework} {_version(framework)}",
           "weights": params_digest(params)}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]


def artifact_path(spec: WorkloadSpec, fmt: str, precision: str, device: str, params: Params) -> Path:
    return cache_dir() / f"{artifact_key(spec, fmt, precision, device, params)}{FORMATS[fmt][0]}"


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_artifact(path: Path) -> Artifact | None:
    """The cached artifact at ``path`` with its record, or None if it (or its sidecar) is not there."""
    side = sidecar(path)
    if not path.exists() or not side.exists():
        return None
    return Artifact(path, json.loads(side.read_text(encoding="utf-8")))


def ensure(spec: WorkloadSpec, params: Params, fmt: str, device: str, options: dict[str, Any]) -> Artifact:
    """The artifact of ``spec`` with ``params`` in ``fmt``: from the cache, else exported now by a child process.

    ``options`` are the cell's runner options (as a dict: the child's sessions take its threads). Raises
    :class:`ArtifactError` with the child's last error line when the export fails.
    """
    precision = options.get("precision", "fp32")
    path = artifact_path(spec, fmt, precision, device, params)
    with _locked(path):
        found = read_artifact(path)
        if found is not None:
            return dataclasses.replace(found, meta={**found.meta, "cached": True})
        with tempfile.TemporaryDirectory(prefix="fwbench-export-") as tmp:
            weights = Path(tmp) / "params.npz"
            np.savez(weights, **{f"{i}/{k}": v for i, p in enumerate(params) for k, v in p.items()})
            request = {"spec": spec.to_dict(), "format": fmt, "device": device, "options": options,
                       "params": str(weights), "n_params": len(params), "path": str(path)}
            req = Path(tmp) / "request.json"
            req.write_text(json.dumps(request), encoding="utf-8")
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
            proc = subprocess.run([sys.executable, "-m", "fwbench.runners.artifacts", str(req)],
                                  capture_output=True, text=True, env=env)
        if proc.returncode != 0 or read_artifact(path) is None:
            raise ArtifactError(f"{fmt} export failed: {last_error_line(proc.stderr) or f'exit {proc.returncode}'}")
        found = read_artifact(path)
        assert found is not None
        return dataclasses.replace(found, meta={**found.meta, "cached": False})


def last_error_line(text: str) -> str:
    """The last line of a child's stderr that says something (a traceback's exception line)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line.split(":")[0] or "Exception" in line.split(":")[0]]
    return (errors or lines or [""])[-1][:400]


class _locked:
    """An exclusive ``fcntl`` lock on ``PATH.lock`` for as long as the ``with`` block runs."""

    def __init__(self, path: Path):
        self.lock = path.with_name(path.name + ".lock")

    def __enter__(self) -> None:
        self.fd = os.open(self.lock, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


# ------------------------------------------------------------------------------------ the child (exporter)
def load_params(path: str, n: int) -> Params:
    params: Params = [{} for _ in range(n)]
    with np.load(path) as z:
        for key in z.files:
            i, name = key.split("/", 1)
            params[int(i)][name] = z[key]
    return params


def example_input(spec: WorkloadSpec, layout: str) -> np.ndarray:
    """A random batch at the static batch size: NCHW (``torch``) or channels-last (``tf``) images; token ids
    as int64 (torch) / int32 (TFLite's signature)."""
    rng = np.random.default_rng(0)
    shape = (spec.batch_size, *spec.input_shape)
    if spec.tokens:
        return rng.integers(0, spec.vocabulary or 1, size=shape).astype(np.int64 if layout == "torch" else np.int32)
    x = rng.standard_normal(shape, dtype=np.float32)
    # nhwc_to_nchw: canonical C-order strides, as host_input gives them (an AOTInductor package is compiled
    # for its example's strides; np.ascontiguousarray keeps a size-1 channel axis's channels-last stride)
    return nhwc_to_nchw(x) if layout == "torch" and x.ndim == 4 else x


def _session(runner: str, device: str, options: dict[str, Any]) -> Any:
    from fwbench.config import RunnerOptions
    from fwbench.job import Job
    from fwbench.worker import load_session

    opts = RunnerOptions.from_dict({**options, "distributed": None})
    s = load_session(Job(workload={}, runner=runner, device=device, options=opts))
    s.setup()
    return s


def torch_model(spec: WorkloadSpec, params: Params, device: str, options: dict[str, Any]) -> Any:
    """The ``torch`` runner's model of ``spec`` (dropout removed), in eval mode, on ``device``."""
    session = _session("torch", device, options)
    session.build(dataclasses.replace(spec.without_dropout(), mode="infer"), params)
    return session.model.eval(), session.dev


def export_onnx(spec: WorkloadSpec, params: Params, path: Path, options: dict[str, Any]) -> dict[str, Any]:
    """``torch.onnx.export`` of the ``torch`` runner's model: the dynamo exporter where onnxscript is
    installed, else the TorchScript-based one (recorded)."""
    import torch

    model, _ = torch_model(spec, params, "cpu", options)
    x = torch.from_numpy(example_input(spec, "torch"))
    dynamo = importlib.util.find_spec("onnxscript") is not None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's; recorded as `exporter`
        torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["logits"], dynamo=dynamo,
                          **({} if dynamo else {"opset_version": 17}))
    return {"exporter": "torch.onnx.export(dynamo=True)" if dynamo else
            "torch.onnx.export(dynamo=False), TorchScript-based (onnxscript not installed)",
            "versions": {"torch": torch.__version__, "onnx": _version("onnx"), "onnxscript": _version("onnxscript")}}


def export_aoti(spec: WorkloadSpec, params: Params, path: Path, device: str,
                options: dict[str, Any]) -> dict[str, Any]:
    """``torch.export.export`` of the ``torch`` runner's model → ``aoti_compile_and_package`` (a .pt2)."""
    import torch
    import torch._inductor

    model, dev = torch_model(spec, params, device, options)
    x = torch.from_numpy(example_input(spec, "torch")).to(dev)
    ep = torch.export.export(model, (x,))  # eval mode: batch norm reads its moving statistics
    torch._inductor.aoti_compile_and_package(ep, package_path=str(path))
    return {"exporter": "torch.export.export -> torch._inductor.aoti_compile_and_package",
            "versions": {"torch": torch.__version__}}


def tflite_bytes(spec: WorkloadSpec, params: Params, options: dict[str, Any]) -> bytes:
    """The TFLite flatbuffer of the ``tf-graph`` runner's network: a ``tf.function`` with a static input
    signature (batch included) converted by ``TFLiteConverter`` with no optimizations (fp32, exact)."""
    import tensorflow as tf

    session = _session("tf-graph", "cpu", options)
    session.build(dataclasses.replace(spec.without_dropout(), mode="infer"), params)
    net = session.net
    module = tf.Module()
    module.net = net
    x = example_input(spec, "tf")
    sig = tf.TensorSpec(x.shape, tf.int32 if spec.tokens else tf.float32, name="x")
    # token ids: the signature takes int32 (TFLite's usual index type), the network reads int64 as when timed
    module.serve = tf.function(lambda x: net(tf.cast(x, tf.int64) if spec.tokens else x, training=False),
                               input_signature=[sig])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    return converter.convert()


def export_tflite(spec: WorkloadSpec, params: Params, path: Path, options: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    path.write_bytes(tflite_bytes(spec, params, options))
    return {"exporter": "tf.function(static input signature) -> tf.lite.TFLiteConverter.from_concrete_functions "
                        "(no optimizations, fp32)", "versions": {"tensorflow": tf.__version__}}


def export(request: dict[str, Any]) -> dict[str, Any]:
    """Export one artifact as ``request`` says (in this process), write it and its sidecar; returns the sidecar."""
    spec = WorkloadSpec.from_dict(request["spec"])
    params = load_params(request["params"], request["n_params"])
    path, fmt, options = Path(request["path"]), request["format"], request.get("options", {})
    if options.get("precision", "fp32") != "fp32":
        raise ValueError(f"only fp32 artifacts are exported, not {options['precision']}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    t0 = time.perf_counter()
    importlib.import_module(FORMATS[fmt][1] if fmt in FORMATS else "json")  # the exporter's import: not export time
    t1 = time.perf_counter()
    if fmt == "onnx":
        meta = export_onnx(spec, params, tmp, options)
    elif fmt == "tflite":
        meta = export_tflite(spec, params, tmp, options)
    elif fmt == "aoti":
        meta = export_aoti(spec, params, tmp, request["device"], options)
    else:
        raise ValueError(f"unknown artifact format {fmt!r}; choose from: {', '.join(FORMATS)}")
    meta = {"format": fmt, "export_s": time.perf_counter() - t1, "import_s": t1 - t0, **meta, "artifact_bytes": tmp.stat().st_size,
            "batch": spec.batch_size, "precision": "fp32",
            # an ONNX or TFLite file is exported on the CPU and serves any device; an AOTInductor package is
            # compiled for the device it names
            "device": request["device"] if FORMATS[fmt][2] else "any (exported on cpu)"}
    return write(tmp, path, meta)


def write(tmp: Path, path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Move an exported file into place and write its sidecar after it (a sidecar means a complete file)."""
    os.replace(tmp, path)
    side = sidecar(path)
    side_tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    side_tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(side_tmp, side)
    return meta


RUNNER_FORMATS = {"onnxruntime": "onnx", "openvino": "onnx", "tflite": "tflite", "torch-export": "aoti"}


def prepare(job_dict: dict[str, Any]) -> Artifact:
    """The artifact a cell of ``job_dict`` (a :class:`~fwbench.job.Job` as JSON) will serve, exported now if it is
    not cached: a run can warm the cache before cold-start cells, so that no fresh process pays the export.
    The shared weights are the workload's (:func:`fwbench.weights.init_params`), as the worker's."""
    from fwbench.job import Job
    from fwbench.weights import init_params

    job = Job.from_dict(job_dict)
    spec = WorkloadSpec.from_dict(job.workload)
    return ensure(spec, init_params(spec), RUNNER_FORMATS[job.runner], job.device, job.options.to_dict())


def main(argv: list[str] | None = None) -> int:
    """``python -m fwbench.runners.artifacts REQUEST.json``: export one artifact (the child of :func:`ensure`);
    ``python -m fwbench.runners.artifacts --job JOB.json``: make sure the artifact of a cell's job is cached
    (prints its path; exit 1 with the one-line reason when the export fails)."""
    args = argv if argv is not None else sys.argv[1:]
    if args[0] == "--job":
        try:
            art = prepare(json.loads(Path(args[1]).read_text(encoding="utf-8")))
        except ArtifactError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(art.path)
        return 0
    export(json.loads(Path(args[0]).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
