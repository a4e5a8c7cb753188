"""Layout conversion (canonical channels-last -> PyTorch) for every layer type, against the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

from fwbench import layout, parity, reference
from fwbench.data import DataSource
from fwbench.weights import init_params
from fwbench.workload_spec import parse_workload

torch = pytest.importorskip("torch")
from fwbench.runners import torch_runner  # noqa: E402


def spec_of(input_shape, layers, classes=3, batch=5, seed=3):
    return parse_workload({"name": "t", "input_shape": input_shape, "classes": classes, "batch_size": batch,
                           "seed": seed, "layers": layers})


def torch_logits(spec, params, x, training=False):
    model = torch_runner.build_module(spec, params).double()
    model.train(training)
    xt = torch.from_numpy(layout.nhwc_to_nchw(x) if x.ndim == 4 else x).double()
    with torch.no_grad():
        return model(xt).numpy()


def randomize(params, seed=0):
    """Non-trivial biases and batch-norm statistics, so that their conversion is exercised too."""
    rng = np.random.default_rng(seed)
    return [{k: (v + rng.uniform(0.1, 0.5, v.shape)).astype(np.float32) if k != "kernel" else v
             for k, v in p.items()} for p in params]


HEAD = [{"type": "flatten"}, {"type": "dense", "units": 3}]
CASES = {
    "conv_valid": ([7, 6, 2], [{"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"}] + HEAD),
    "conv_same_stride2": ([7, 6, 2], [{"type": "conv2d", "filters": 4, "kernel_size": 3, "strides": 2,
                                       "padding": "same", "activation": "tanh"}] + HEAD),
    "maxpool_valid": ([6, 6, 2], [{"type": "maxpool2d", "pool_size": 2}] + HEAD),
    "maxpool_same_odd": ([7, 5, 3], [{"type": "maxpool2d", "pool_size": 3, "strides": 2, "padding": "same"}] + HEAD),
    "flatten_order": ([3, 4, 5], HEAD),
    "dense_chain": ([6], [{"type": "dense", "units": 5, "activation": "sigmoid"}, {"type": "dense", "units": 3}]),
    "batchnorm_conv": ([5, 5, 3], [{"type": "batchnorm", "momentum": 0.9, "epsilon": 0.001}] + HEAD),
    "batchnorm_after_flatten": ([3, 2, 4], [{"type": "flatten"}, {"type": "batchnorm"}, {"type": "dense", "units": 3}]),
    "activation_and_dropout": ([6], [{"type": "dense", "units": 4}, {"type": "activation", "activation": "relu"},
                                     {"type": "dropout", "rate": 0.5}, {"type": "dense", "units": 3}]),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("training", [False, True])
def test_torch_layer_matches_reference(case, training):
    shape, layers = CASES[case]
    spec = spec_of(shape, layers)
    if training and any(l.kind == "dropout" for l in spec.layers):
        spec = spec.without_dropout()
    params = randomize(init_params(spec))
    x, _ = DataSource(spec).batch(0)
    want = reference.forward(spec, params, x, training=training)
    got = torch_logits(spec, params, x, training=training)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_conv_kernel_round_trip_and_flatten_permutation():
    k = np.arange(3 * 3 * 2 * 4, dtype=np.float32).reshape(3, 3, 2, 4)
    np.testing.assert_array_equal(layout.conv_oihw_to_hwio(layout.conv_hwio_to_oihw(k)), k)
    assert layout.conv_hwio_to_oihw(k).shape == (4, 2, 3, 3)
    x = np.arange(2 * 3 * 4).reshape(1, 2, 3, 4)  # NHWC
    perm = layout.chw_order((2, 3, 4))
    np.testing.assert_array_equal(x.reshape(-1)[perm], layout.nhwc_to_nchw(x).reshape(-1))


def _initial_loss_cell(runner, spec, params, conversion=None, monkeypatch=None):
    if conversion is not None:
        monkeypatch.setattr(torch_runner, "to_channels_first", conversion)
    x, y = DataSource(spec).batch(0)
    if runner == "reference":
        loss = reference.cross_entropy(reference.forward(spec, params, x, training=True), y)
    else:
        model = torch_runner.build_module(spec, params)
        xt = torch.from_numpy(layout.nhwc_to_nchw(x))
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(model(xt), torch.from_numpy(y)).item()
    return {"id": f"t/{runner}/cpu/0", "workload": "t", "runner": runner, "family": runner, "device": "cpu",
            "repeat": 0, "parity": {"initial_loss": loss, "kstep_loss": None}}


def test_broken_conv_conversion_fails_the_parity_check(monkeypatch):
    spec = spec_of([8, 8, 1], [{"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"}] + HEAD,
                   batch=16)
    params = init_params(spec)
    good = [_initial_loss_cell("reference", spec, params), _initial_loss_cell("torch", spec, params)]
    assert parity.evaluate(good, reference="reference")["ok"]

    def wrong(spec_, params_):  # swaps the kernel's height and width: a classic layout bug
        out = layout.to_channels_first(spec_, params_)
        return [dict(p, kernel=np.ascontiguousarray(p["kernel"].transpose(0, 1, 3, 2))) if p.get("kernel") is not None
                and p["kernel"].ndim == 4 else p for p in out]

    bad = [_initial_loss_cell("reference", spec, params),
           _initial_loss_cell("torch", spec, params, wrong, monkeypatch)]
    verdict = parity.evaluate(bad, reference="reference")
    assert not verdict["ok"] and verdict["mismatches"] == ["t/torch/cpu/0"]
    assert bad[1]["parity"]["status"] == "mismatch" and "initial loss" in bad[1]["parity"]["detail"]


def test_broken_flatten_order_fails_the_parity_check(monkeypatch):
    spec = spec_of([4, 4, 3], HEAD, batch=16)
    params = init_params(spec)

    def no_flatten_permutation(spec_, params_):
        return [dict(p, kernel=np.ascontiguousarray(p["kernel"].T)) if "kernel" in p else p for p in params_]

    cells = [_initial_loss_cell("reference", spec, params),
             _initial_loss_cell("torch", spec, params, no_flatten_permutation, monkeypatch)]
    assert not parity.evaluate(cells, reference="reference")["ok"]


def test_nchw_batches_have_canonical_strides_even_with_one_channel():
    # a size-1 channel axis must not leave PyTorch a tensor that also looks channels-last
    t = torch.from_numpy(layout.nhwc_to_nchw(np.zeros((4, 5, 6, 1), np.float32)))
    assert t.stride() == (30, 30, 6, 1) == torch.zeros(4, 1, 5, 6).stride()
