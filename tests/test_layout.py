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
    # graph layer kinds
    "grouped_conv": ([5, 5, 4], [{"type": "conv2d", "filters": 6, "kernel_size": 3, "groups": 2,
                                  "activation": "relu6"}] + HEAD),
    "grouped_conv_no_bias_same": ([5, 6, 6], [{"type": "conv2d", "filters": 3, "kernel_size": 2, "groups": 3,
                                               "strides": 2, "padding": "same", "use_bias": False}] + HEAD),
    "depthwise_mult3_same_stride2": ([6, 7, 2], [{"type": "depthwise_conv2d", "kernel_size": 3, "depth_multiplier": 3,
                                                  "strides": 2, "padding": "same", "activation": "swish"}] + HEAD),
    "depthwise_valid_no_bias": ([5, 5, 3], [{"type": "depthwise_conv2d", "kernel_size": 2, "use_bias": False,
                                             "activation": "gelu"}] + HEAD),
    "avgpool_valid": ([6, 7, 2], [{"type": "avgpool2d", "pool_size": 2}] + HEAD),
    "avgpool_same_mixed_axes": ([7, 6, 2], [{"type": "avgpool2d", "pool_size": 3, "strides": 2,
                                             "padding": "same"}] + HEAD),
    "avgpool_same_even_window_stride2": ([5, 5, 2], [{"type": "avgpool2d", "pool_size": 2, "padding": "same"}] + HEAD),
    "avgpool_same_even_window_stride1": ([5, 4, 2], [{"type": "avgpool2d", "pool_size": 2, "strides": 1,
                                                      "padding": "same"}] + HEAD),
    "avgpool_same_window4_stride1": ([5, 6, 1], [{"type": "avgpool2d", "pool_size": 4, "strides": 1,
                                                  "padding": "same"}] + HEAD),
    "avgpool_same_window_below_stride": ([4, 5, 2], [{"type": "avgpool2d", "pool_size": 1, "strides": 2,
                                                      "padding": "same"}] + HEAD),
    "conv_same_symmetric_and_uneven_axes": ([6, 5, 2], [{"type": "conv2d", "filters": 3, "kernel_size": 3,
                                                         "strides": 2, "padding": "same"}] + HEAD),
    "maxpool_same_symmetric": ([5, 5, 2], [{"type": "maxpool2d", "pool_size": 3, "strides": 1,
                                           "padding": "same"}] + HEAD),
    "zero_padding_global_avgpool": ([4, 3, 2], [{"type": "zero_padding2d", "pad": [1, 0, 2, 1]},
                                                {"type": "global_avgpool2d"}, {"type": "dense", "units": 3}]),
    "softmax_over_channels": ([3, 3, 4], [{"type": "conv2d", "filters": 3, "kernel_size": 1, "activation": "softmax"},
                                          {"type": "batchnorm"}] + HEAD),
    "dense_activations": ([6], [{"type": "dense", "units": 5, "activation": "gelu"},
                                {"type": "dense", "units": 4, "activation": "swish", "use_bias": False},
                                {"type": "activation", "activation": "softmax"}, {"type": "dense", "units": 3}]),
    # flat features in two orders meet: a concat keeps each part's order, an add reorders its later inputs
    "concat_of_flattens": ([3, 2, 2], [{"type": "flatten", "name": "f0"},
                                       {"type": "conv2d", "filters": 3, "kernel_size": 1, "inputs": "input"},
                                       {"type": "flatten", "name": "f1"},
                                       {"type": "dense", "units": 4, "inputs": "f0", "name": "d"},
                                       {"type": "concat", "inputs": ["f0", "d", "f1"]},
                                       {"type": "batchnorm"}, {"type": "dense", "units": 3}]),
    "add_flat_mixed_orders": ([2, 3, 2], [{"type": "flatten", "name": "f"},
                                          {"type": "dense", "units": 12, "name": "d"},
                                          {"type": "add", "inputs": ["d", "f"], "name": "a1"},
                                          {"type": "add", "inputs": ["f", "d", "f"], "name": "a2"},
                                          {"type": "concat", "inputs": ["a1", "a2"]},
                                          {"type": "batchnorm"}, {"type": "dense", "units": 3}]),
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


def test_depthwise_kernel_is_a_grouped_conv_weight_in_keras_channel_order():
    k = np.arange(2 * 3 * 4 * 3, dtype=np.float32).reshape(2, 3, 4, 3)  # [kh, kw, in, mult]
    w = layout.depthwise_kernel_oihw(k)
    assert w.shape == (12, 1, 2, 3) and w.flags["C_CONTIGUOUS"]
    for c in range(4):
        for m in range(3):
            np.testing.assert_array_equal(w[c * 3 + m, 0], k[:, :, c, m])


def test_grouped_conv_kernel_keeps_consecutive_group_slices():
    k = np.random.default_rng(0).normal(size=(3, 3, 2, 6)).astype(np.float32)  # in/groups = 2, 3 groups
    w = layout.conv_kernel_oihw(k, groups=3)
    assert w.shape == (6, 2, 3, 3)
    np.testing.assert_array_equal(w[4], k[..., 4].transpose(2, 0, 1))  # filter 4: group 2's second filter


def test_feature_orders_follow_the_edges_into_concat_and_add():
    spec = spec_of(*CASES["add_flat_mixed_orders"])
    orders = dict(zip([l.name for l in spec.layers], layout.feature_orders(spec)))
    chw = layout.chw_order((2, 3, 2))
    np.testing.assert_array_equal(orders["f"], chw)
    assert orders["d"] is None and orders["a1"] is None  # an add keeps its first input's order
    np.testing.assert_array_equal(orders["a2"], chw)
    cat = [l.name for l in spec.layers if l.kind == "concat"][0]
    np.testing.assert_array_equal(orders[cat], np.concatenate([np.arange(12), chw + 12]))
    # reorder_index brings features from one order to another; to_canonical_order undoes an order
    x = np.arange(12) * 10
    idx = layout.reorder_index(chw, None, 12)
    np.testing.assert_array_equal(x[chw][idx], x)
    assert layout.reorder_index(chw, chw, 12) is None
    np.testing.assert_array_equal(layout.to_canonical_order(np.stack([x[chw], -x[chw]]), chw), np.stack([x, -x]))


def test_to_channels_first_permutes_parameters_behind_a_concat_of_flat_features():
    spec = spec_of(*CASES["concat_of_flattens"])
    params = randomize(init_params(spec))
    out = layout.to_channels_first(spec, params)
    order = layout.feature_orders(spec)[4]  # the concat
    bn, dense = out[5], out[6]
    np.testing.assert_array_equal(bn["moving_mean"], params[5]["moving_mean"][order])
    x = np.random.default_rng(1).normal(size=(len(order),))
    np.testing.assert_allclose(dense["kernel"] @ x[order], params[6]["kernel"].T @ x, rtol=1e-6)
