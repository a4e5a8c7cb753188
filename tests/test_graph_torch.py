"""Graph workloads in PyTorch: the fx model against the NumPy reference, converters that break, batch-norm
statistics, and the torch runners end to end on TINY_GRAPH."""

from __future__ import annotations

import ast
import tomllib

import numpy as np
import pytest

from fwbench import launch, layout, reference
from fwbench.data import DataSource
from fwbench.job import Job, RunnerOptions
from fwbench.weights import init_params
from fwbench.workload import load_workload
from fwbench.workload_spec import parse_workload
from tests.conftest import REPO, TINY_GRAPH

torch = pytest.importorskip("torch")
from fwbench.runners import torch_runner  # noqa: E402


def tiny_graph():
    return parse_workload(tomllib.loads(TINY_GRAPH))


def randomize(params, seed=0):
    """Non-trivial biases and batch-norm parameters and statistics (eval mode reads the moving ones)."""
    rng = np.random.default_rng(seed)
    return [{k: (v + rng.uniform(0.1, 0.5, v.shape)).astype(np.float32) if k != "kernel" else v
             for k, v in p.items()} for p in params]


def torch_forward(spec, params, x, training, dtype=torch.float64):
    model = torch_runner.build_module(spec, params).to(dtype).train(training)
    with torch.no_grad():
        return model(torch.from_numpy(layout.nhwc_to_nchw(x)).to(dtype)).double().numpy()


def assert_matches(got, want, tol):
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(1.0, np.abs(want).max()))


def assert_differs(got, want, tol=1e-3):
    assert np.abs(got - want).max() > tol * max(1.0, np.abs(want).max())


# TINY_GRAPH runs in float64; 1e-6 because the reference adds epsilon to the float32 moving variance in float32
CASES = {"tinygraph": (tiny_graph, 8, 1e-6, torch.float64),
         "resnet20": (lambda: load_workload("resnet20"), 2, 1e-4, torch.float32),
         "mobilenet": (lambda: load_workload("mobilenet"), 2, 1e-4, torch.float32)}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", list(CASES))
def test_forward_matches_reference(case, training):
    make, batch, tol, dtype = CASES[case]
    spec = make()
    params = init_params(spec) if training else randomize(init_params(spec))
    x = DataSource(spec).batch(0)[0][:batch]
    want = reference.forward(spec, params, x, training=training)
    assert_matches(torch_forward(spec, params, x, training, dtype), want, tol)


def test_model_is_straight_line_fx_code_with_named_modules():
    model = torch_runner.build_module(load_workload("resnet20"), init_params(load_workload("resnet20")))
    code = model.code
    assert "for " not in code and code.count("torch.add(") == 9
    assert isinstance(model.get_submodule("stage2_projection_bn"), torch.nn.BatchNorm2d)
    conv = model.get_submodule(model.meta["fwbench_nodes"]["stage2/#5"][0])
    assert conv.stride == (2, 2) and conv.kernel_size == (1, 1) and conv.bias is None
    dw = torch_runner.build_module(load_workload("mobilenet"), init_params(load_workload("mobilenet")))
    convs = [m for m in dw.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(convs) == 13 and all(m.groups == m.in_channels == m.out_channels for m in convs)


def test_in_place_relus_give_the_gradients_of_plain_ones():
    spec = load_workload("resnet20")
    model = torch_runner.build_module(spec, init_params(spec))
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 19 and all(m.inplace for m in relus)  # after every batch norm and add
    x, y = (torch.from_numpy(a) for a in DataSource(spec).batch(0))
    x = x[:2].permute(0, 3, 1, 2).contiguous()

    def grads():
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y[:2]).backward()
        return [p.grad.clone() for p in model.parameters()]

    with_in_place = grads()
    for m in relus:
        m.inplace = False
    for a, b in zip(with_in_place, grads()):
        torch.testing.assert_close(a, b)
    tiny = torch_runner.build_module(tiny_graph(), init_params(tiny_graph()))
    assert tiny.get_submodule("n2_relu6").inplace  # after a batch norm; the swish, tanh ... are not in place


# --- converters that break: each must make the forward differ from the reference ---------------------

def _broken_forward(spec, training=True, batch=8):
    params = init_params(spec)
    x = DataSource(spec).batch(0)[0][:batch]
    return torch_forward(spec, params, x, training), reference.forward(spec, params, x, training=training)


def test_fixture_is_sound_before_breaking():
    got, want = _broken_forward(tiny_graph())
    assert_matches(got, want, 1e-9)


def test_broken_depthwise_kernel_layout_is_caught(monkeypatch):
    def multiplier_major(kernel):  # out channel m*in + c instead of c*mult + m
        kh, kw, c, m = kernel.shape
        return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1).reshape(c * m, 1, kh, kw))

    monkeypatch.setattr(layout, "depthwise_kernel_oihw", multiplier_major)
    assert_differs(*_broken_forward(tiny_graph()))


def test_broken_grouped_kernel_slices_are_caught(monkeypatch):
    def swapped_groups(kernel, groups=1):
        w = layout.conv_hwio_to_oihw(kernel)
        return np.ascontiguousarray(np.roll(w, w.shape[0] // groups, axis=0)) if groups > 1 else w

    monkeypatch.setattr(layout, "conv_kernel_oihw", swapped_groups)
    assert_differs(*_broken_forward(tiny_graph()))


def test_dropped_flatten_permutation_is_caught(monkeypatch):
    monkeypatch.setattr(layout, "chw_order", lambda hwc: np.arange(int(np.prod(hwc))))
    assert_differs(*_broken_forward(tiny_graph()))


def test_projection_shortcut_wired_to_the_wrong_node_is_caught(monkeypatch):
    spec = load_workload("resnet20")
    # the add reads the projection conv's output, skipping the shortcut's batch norm (shapes still agree)
    wrong = {layer.name: layer.inputs[0] for layer in spec.layers if layer.name.endswith("/projection")}
    assert len(wrong) == 2
    original = torch_runner._node_inputs

    def miswired(layer, values):
        if layer.kind != "add":
            return original(layer, values)
        return [values[wrong.get(n, n)] for n in layer.inputs]

    monkeypatch.setattr(torch_runner, "_node_inputs", miswired)
    got, want = _broken_forward(spec, batch=2)
    assert_differs(got, want)


def test_identity_shortcut_dropped_is_caught(monkeypatch):
    original = torch_runner._node_inputs
    monkeypatch.setattr(torch_runner, "_node_inputs",  # the block's add reads its residual branch twice
                        lambda layer, values: original(layer, values)[-1:] * 2 if layer.kind == "add"
                        else original(layer, values))
    assert_differs(*_broken_forward(tiny_graph()))


# --- batch-norm moving statistics ----------------------------------------------------------------------

def _session(spec, runner="torch"):
    cls = torch_runner.TorchCompileSession if runner == "torch-compile" else torch_runner.TorchSession
    s = cls(Job(workload=spec.to_dict(), runner=runner, device="cpu", options=RunnerOptions(threads=1)))
    s.setup()
    s.build(spec, init_params(spec))
    return s


def test_batchnorm_stats_follow_keras_momentum_with_torch_unbiased_variance():
    """K training steps with a frozen network (learning rate 0) so that every batch's statistics come from the
    reference forward; PyTorch's moving variance takes the batch variance times n / (n - 1)."""
    spec = tiny_graph()
    params = init_params(spec)
    data = DataSource(spec)
    s = _session(spec)
    for g in s.opt.param_groups:
        g["lr"] = 0.0
    bns = [(layer, p) for layer, p in zip(spec.layers, params) if layer.kind == "batchnorm"]
    want = [np.stack([p["moving_mean"], p["moving_variance"]]).astype(np.float64) for _, p in bns]
    for i in range(3):
        x, y = data.batch(i)
        s.value(s.train_step(s.put((x, y))))
        outs: dict = {}
        reference.forward(spec, params, x, training=True, outputs=outs)
        for j, (layer, _) in enumerate(bns):
            h = outs[layer.inputs[0]]
            h = h.reshape(-1, h.shape[-1])
            n = len(h)
            batch = np.stack([h.mean(axis=0), h.var(axis=0) * n / (n - 1)])
            want[j] = layer.momentum * want[j] + (1 - layer.momentum) * batch
    got = s.batchnorm_stats()
    assert [g.shape for g in got] == [w.shape for w in want] == [(2, 4), (2, 4), (2, 4), (2, 72)]
    assert all(g.dtype == np.float64 for g in got)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    # the flat batch norm's channels are in canonical (HWC) order: PyTorch's CHW order would not match
    assert not np.allclose(got[-1][:, layout.chw_order((3, 3, 8))], want[-1], rtol=1e-3)


def test_batchnorm_stats_empty_without_batchnorm():
    spec = parse_workload({"name": "t", "input_shape": [4], "classes": 2, "batch_size": 2,
                           "layers": [{"type": "dense", "units": 2}]})
    assert _session(spec).batchnorm_stats() == []


# --- the benchmark's hand-written ResNet-20 computes the same network --------------------------------

def test_hand_written_resnet20_of_the_harness_matches_the_reference():
    tree = ast.parse((REPO / "benchmarks" / "harness_torch.py").read_text())
    source = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                  and any(getattr(t, "id", None) == "HAND_RESNET" for t in node.targets))
    ns: dict = {"__name__": "hand_resnet"}  # the classes and the weight loader, not the script's main part
    exec(source, ns)
    spec = load_workload("resnet20")
    params = init_params(spec)
    model = ns["ResNet20"]()
    ns["load_shared_weights"](model, params)
    x = DataSource(spec).batch(0)[0][:2]
    with torch.no_grad():
        got = model(torch.from_numpy(layout.nhwc_to_nchw(x))).double().numpy()
    assert_matches(got, reference.forward(spec, params, x, training=True), 1e-4)


# --- end to end ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_torch_runners_train_tiny_graph_in_workers_with_parity(tmp_path):
    """The parity phase of both runners in real worker processes (fwbench.launch.run_cell): their losses agree
    with each other and with the reference, and their batch-norm statistics with each other."""
    spec = tiny_graph()
    cells = {}
    for runner in ("torch", "torch-compile"):
        job = Job(workload=spec.to_dict(), runner=runner, device="cpu", options=RunnerOptions(threads=1),
                  phases=("parity",))
        (tmp_path / runner).mkdir()
        cells[runner] = launch.run_cell(job, tmp_path / runner, timeout=300)
        assert cells[runner]["status"] == "ok", cells[runner].get("reason")
    eager, compiled = cells["torch"]["parity"], cells["torch-compile"]["parity"]
    assert len(eager["losses"]) == spec.parity_steps == 3 and eager["kstep_loss"] > 0
    x, y = DataSource(spec).batch(0)
    logits = reference.forward(spec, init_params(spec), x, training=True)
    assert eager["initial_loss"] == pytest.approx(reference.cross_entropy(logits, y), rel=1e-5)
    assert compiled["initial_loss"] == pytest.approx(eager["initial_loss"], rel=1e-4)
    assert compiled["kstep_loss"] == pytest.approx(eager["kstep_loss"], rel=2e-3)
    assert cells["torch-compile"]["settings"]["compiled"] is True
    if "bn_stats" in eager:  # recorded by the worker where it calls batchnorm_stats()
        np.testing.assert_allclose(compiled["bn_stats"], eager["bn_stats"], rtol=2e-3, atol=2e-3)
