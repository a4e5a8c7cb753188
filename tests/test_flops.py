"""Analytic FLOPs against hand calculations, and the MFU arithmetic (pure; no framework)."""

from __future__ import annotations

import dataclasses

import pytest

from fwbench import flops
from fwbench.workload import load_workload
from fwbench.workload_spec import parse_workload


def test_cnn_flops_match_a_hand_calculation():
    spec = load_workload("cnn")  # 28x28x1 -> conv 32@3x3 -> pool 2 -> conv 64@3x3 -> pool 2 -> 1600 -> 64 -> 10
    # Shapes by hand: 28-3+1 = 26; pool -> 13; 13-3+1 = 11; pool -> 5 (floor); flatten 5*5*64 = 1600.
    conv1 = 2 * (3 * 3 * 1) * 32 * (26 * 26)       # 389,376
    conv2 = 2 * (3 * 3 * 32) * 64 * (11 * 11)      # 4,460,544
    dense1 = 2 * 1600 * 64                          # 204,800
    dense2 = 2 * 64 * 10                            # 1,280
    forward = conv1 + conv2 + dense1 + dense2
    assert forward == 5_056_000
    assert flops.forward_flops(spec) == forward
    # backward: weight gradients of all four layers, input gradients of all but the first (its input is data)
    training = forward + forward + (forward - conv1)
    assert training == 14_778_624
    assert flops.training_flops(spec) == training
    assert spec.batch_size == 64
    assert flops.flops_per_step(spec) == 64 * training == 945_831_936
    assert [(l.index, l.kind) for l in flops.layer_flops(spec)] == [(0, "conv2d"), (2, "conv2d"), (5, "dense"), (6, "dense")]


def test_mlp_flops_match_a_hand_calculation():
    spec = load_workload("mlp")  # 784 -> 512 -> 512 -> 10, batch 128
    l1, l2, l3 = 2 * 784 * 512, 2 * 512 * 512, 2 * 512 * 10
    forward = l1 + l2 + l3
    assert forward == 1_337_344
    assert flops.forward_flops(spec) == forward
    training = 3 * forward - l1
    assert flops.training_flops(spec) == training == 3_209_216
    assert flops.flops_per_step(spec) == 128 * training == 410_779_648


def test_inference_step_counts_only_the_forward_pass():
    spec = dataclasses.replace(load_workload("mlp"), mode="infer")
    assert flops.flops_per_step(spec) == 128 * 1_337_344


def _spec(layers, input_shape, classes):
    return parse_workload({"name": "t", "input_shape": input_shape, "classes": classes, "batch_size": 2,
                           "layers": layers})


def test_same_padding_strides_and_uncounted_layers():
    # 9x9x2, conv 4@3x3 stride 2 'same' -> ceil(9/2) = 5 -> 5x5x4; batchnorm, pooling, dropout, activation: 0 FLOPs
    spec = _spec([{"type": "conv2d", "filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},
                  {"type": "batchnorm"}, {"type": "activation", "activation": "relu"},
                  {"type": "maxpool2d", "pool_size": 5}, {"type": "flatten"}, {"type": "dropout", "rate": 0.5},
                  {"type": "dense", "units": 3}], [9, 9, 2], 3)
    conv = 2 * 3 * 3 * 2 * 4 * 5 * 5
    dense = 2 * 4 * 3
    assert flops.forward_flops(spec) == conv + dense
    assert flops.training_flops(spec) == 3 * (conv + dense) - conv
    assert [l.input_grad for l in flops.layer_flops(spec)] == [0, dense]


def test_utilisation():
    achieved, mfu = flops.utilisation(1_000_000, 0.001, 4e9)
    assert achieved == pytest.approx(1e9)
    assert mfu == pytest.approx(0.25)
    assert flops.utilisation(1_000_000, 0.001, None) == (pytest.approx(1e9), None)
    assert flops.utilisation(1_000_000, None, 4e9) == (None, None)
    assert flops.utilisation(1_000_000, 0.0, 4e9) == (None, None)


def test_report_shows_utilisation_only_for_cells_that_recorded_it():
    from fwbench.report.build import build_report
    from fwbench.report.markdown import render

    def doc(**fields):
        cell = {"id": "mlp/torch/cpu/0", "workload": "mlp", "runner": "torch", "family": "torch", "device": "cpu",
                "repeat": 0, "status": "ok", "reason": "", "options": {"precision": "fp32"}, "settings": {},
                "summary": {"median": 0.01, "ci_low": 0.009, "ci_high": 0.011, "n": 10}, "step_s": [0.01] * 10,
                **fields}
        return [("run.json", {"run_id": "r", "config": {}, "environment": {}, "workloads": {}, "parity": {},
                              "cells": [cell]})]

    text = render(build_report(doc(flops_per_step=410_779_648, achieved_flops=4.1e10, peak_flops=1.6e11, mfu=0.256,
                                   sync_check={"verdict": "ok"})))
    assert "### Model FLOPs utilisation" in text
    # achieved = FLOPs/step ÷ the combined step time (10 ms): 41.1 GFLOP/s
    assert "| mlp | cpu | torch | fp32 | 411 M | 41.1 GFLOP/s | 160 GFLOP/s | 26% | - | ok |" in text
    assert "Model FLOPs utilisation" not in render(build_report(doc()))


BLOCKS = """
name = "blocks"
input_shape = [32, 32, 3]
classes = 10
batch_size = 2
layers = [
  { type = "conv2d", filters = 16, kernel_size = 3, padding = "same", use_bias = false },
  { type = "batchnorm" },
  { type = "block", block = "basic" },
  { type = "block", block = "down" },
  { type = "global_avgpool2d" },
  { type = "dense", units = 10 },
]
[blocks.basic]
layers = [
  { type = "conv2d", filters = 16, kernel_size = 3, padding = "same", use_bias = false },
  { type = "batchnorm", name = "bn1" },
  { type = "activation", activation = "relu" },
  { type = "conv2d", filters = 16, kernel_size = 3, padding = "same", use_bias = false },
  { type = "batchnorm", name = "bn2" },
  { type = "add", inputs = ["bn2", "input"] },
]
[blocks.down]
layers = [
  { type = "conv2d", filters = 32, kernel_size = 3, strides = 2, padding = "same", use_bias = false },
  { type = "batchnorm", name = "bn2" },
  { type = "conv2d", filters = 32, kernel_size = 1, strides = 2, use_bias = false, inputs = "input", name = "proj" },
  { type = "add", inputs = ["bn2", "proj"] },
]
"""


def test_a_resnet_basic_block_and_a_projection_block_match_a_hand_count():
    import tomllib

    from fwbench.workload_spec import parse_workload

    spec = parse_workload(tomllib.loads(BLOCKS))
    per = {spec.layers[l.index].name: l for l in flops.layer_flops(spec)}
    # stem: 3x3x3 -> 16 on 32x32, input is the data: no input gradient
    stem = 2 * 9 * 3 * 16 * 32 * 32
    assert (per["#0"].forward, per["#0"].weight_grad, per["#0"].input_grad) == (stem, stem, 0)
    # basic block: two 3x3 16 -> 16 convs on 32x32, each 2*9*16*16*1024 = 4,718,592 FLOPs forward, and both
    # need input gradients (their inputs depend on the stem's weights)
    conv = 2 * 9 * 16 * 16 * 32 * 32
    assert conv == 4_718_592
    block = [per["basic.1/#0"], per["basic.1/#3"]]
    assert [(l.forward, l.weight_grad, l.input_grad) for l in block] == [(conv, conv, conv)] * 2
    assert sum(l.training for l in block) == 6 * conv == 28_311_552
    # projection block: 3x3 stride 2 16 -> 32 (16x16 out) and the 1x1 stride 2 shortcut 16 -> 32
    assert per["down.1/#0"].forward == 2 * 9 * 16 * 32 * 16 * 16 == 2_359_296
    assert per["down.1/proj"].forward == 2 * 16 * 32 * 16 * 16 == 262_144
    assert per["#13"].forward == 2 * 32 * 10
    assert flops.training_flops(spec) == 2 * stem + 6 * conv + 3 * (2_359_296 + 262_144 + 640)


def test_depthwise_and_grouped_convolutions_count_their_own_macs():
    import tomllib

    from fwbench.workload_spec import parse_workload

    spec = parse_workload(tomllib.loads("""
name = "dw"
input_shape = [8, 8, 4]
classes = 2
batch_size = 1
layers = [
  { type = "zero_padding2d", pad = 1 },
  { type = "depthwise_conv2d", kernel_size = 3, depth_multiplier = 2 },
  { type = "conv2d", filters = 6, kernel_size = 1, groups = 2 },
  { type = "global_avgpool2d" },
  { type = "dense", units = 2 },
]
"""))
    dw, grouped, dense = flops.layer_flops(spec)
    assert (dw.forward, dw.input_grad) == (2 * 9 * 8 * 8 * 8, 0)  # padding has no parameters: still the data
    assert (grouped.forward, grouped.input_grad) == (2 * (8 // 2) * 6 * 8 * 8,) * 2
    assert dense.forward == 2 * 6 * 2
