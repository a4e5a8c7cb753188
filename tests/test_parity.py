"""The parity verdict (pure): tolerances, reference choice, exclusions."""

from __future__ import annotations

from fwbench import parity


def cell(runner, initial, kstep=None, family=None, workload="w", device="cpu", status="ok"):
    return {"id": f"{workload}/{runner}/{device}/0", "workload": workload, "runner": runner, "device": device,
            "repeat": 0, "family": family or runner, "status": status,
            "parity": {"initial_loss": initial, "kstep_loss": kstep, "k": 4}}


def test_agreement_within_tolerance_is_ok_and_reference_is_marked():
    cells = [cell("tf-graph", 2.30001, 2.1003), cell("torch", 2.3, 2.1)]
    summary = parity.evaluate(cells)
    assert summary["ok"] and summary["groups"][0]["reference"] == "torch"
    assert [c["parity"]["status"] for c in cells] == ["ok", "reference"]


def test_initial_loss_beyond_1e4_is_a_mismatch():
    cells = [cell("torch", 2.3, 2.1), cell("keras", 2.3 * (1 + 5e-4), 2.1)]
    summary = parity.evaluate(cells)
    assert summary["mismatches"] == ["w/keras/cpu/0"]
    assert "initial loss" in cells[1]["parity"]["detail"]


def test_kstep_loss_tolerance_is_wider_but_finite():
    ok = [cell("torch", 2.3, 2.1), cell("tf-eager", 2.3, 2.1 * (1 + 1e-3))]
    assert parity.evaluate(ok)["ok"]
    bad = [cell("torch", 2.3, 2.1), cell("tf-eager", 2.3, 2.1 * 1.01)]
    assert not parity.evaluate(bad)["ok"]
    assert "after 4 steps" in bad[1]["parity"]["detail"]


def test_nan_never_agrees():
    cells = [cell("torch", 2.3), cell("tf-xla", float("nan"))]
    assert not parity.evaluate(cells)["ok"]


def test_fake_runner_single_runner_and_missing_losses_are_not_applicable():
    cells = [cell("fake", 9.9, family="fake"), cell("torch", 2.3), cell("tf-graph", None),
             cell("torch", 2.3, workload="other")]
    summary = parity.evaluate(cells)
    assert summary["ok"] and summary["groups"] == []
    assert all(c["parity"]["status"] == "n/a" for c in cells)


def test_reference_falls_back_to_first_runner_and_groups_split_by_device():
    cells = [cell("tf-graph", 2.3), cell("keras", 2.3), cell("tf-graph", 1.0, device="cuda"),
             cell("keras", 1.0, device="cuda")]
    summary = parity.evaluate(cells)
    assert summary["ok"] and len(summary["groups"]) == 2
    assert {g["reference"] for g in summary["groups"]} == {"tf-graph"}


def test_reduced_precision_widens_tolerances():
    cells = [cell("torch", 2.3), cell("keras", 2.3 * 1.005)]
    assert not parity.evaluate([dict(c) for c in cells])["ok"]
    assert parity.evaluate(cells, precision="bf16")["ok"]


def with_bn(c, stats, nodes=("stem/bn", "b/bn2"), channels=(2, 1)):
    c["parity"].update(bn_stats=list(stats), bn_nodes=list(nodes), bn_channels=list(channels))
    return c


def test_batchnorm_moving_statistics_are_compared_and_the_largest_difference_recorded():
    ref = [0.1, -0.2, 1.01, 0.99, 0.05, 1.2]  # stem/bn: means 0.1 -0.2, variances 1.01 0.99; b/bn2: 0.05, 1.2
    cells = [with_bn(cell("torch", 2.3, 2.1), ref), with_bn(cell("keras", 2.3, 2.1), [v + 1e-5 for v in ref])]
    summary = parity.evaluate(cells)
    assert summary["ok"]
    assert abs(cells[1]["parity"]["bn_max_abs_diff"] - 1e-5) < 1e-9
    assert abs(summary["groups"][0]["bn_max_abs_diff"] - 1e-5) < 1e-9


def test_a_batchnorm_statistic_beyond_tolerance_is_a_mismatch_naming_node_statistic_and_channel():
    ref = [0.1, -0.2, 1.01, 0.99, 0.05, 1.2]
    off = list(ref)
    off[3] = 0.99 * 1.02  # stem/bn's variance of channel 1
    cells = [with_bn(cell("torch", 2.3, 2.1), ref), with_bn(cell("tf-graph", 2.3, 2.1), off)]
    summary = parity.evaluate(cells)
    assert summary["mismatches"] == ["w/tf-graph/cpu/0"]
    detail = cells[1]["parity"]["detail"]
    assert "variance of 'stem/bn', channel 1" in detail and "1.0098 vs 0.99" in detail
    assert "largest difference 0.0198" in detail


def test_batchnorm_statistics_of_another_shape_or_not_finite_never_agree():
    ref = [0.1, -0.2, 1.01, 0.99, 0.05, 1.2]
    shorter = [with_bn(cell("torch", 2.3, 2.1), ref), with_bn(cell("keras", 2.3, 2.1), ref[:4], ("stem/bn",), (2,))]
    assert not parity.evaluate(shorter)["ok"]
    nan = [with_bn(cell("torch", 2.3, 2.1), ref), with_bn(cell("keras", 2.3, 2.1), [float("nan"), *ref[1:]])]
    assert not parity.evaluate(nan)["ok"] and "not finite" in nan[1]["parity"]["detail"]
    # a runner that cannot read its statistics is compared on the losses alone
    silent = [with_bn(cell("torch", 2.3, 2.1), ref), cell("keras", 2.3, 2.1)]
    assert parity.evaluate(silent)["ok"] and "bn_max_abs_diff" not in silent[1]["parity"]
