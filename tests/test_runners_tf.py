"""TensorFlow runners (tf-eager, tf-graph, tf-xla): update rules, retrace counting, errors, and end to end."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from fwbench.data import DataSource
from fwbench.config import RunnerOptions
from fwbench.job import Job
from fwbench.weights import init_params
from fwbench.workload import load_workload
from tests.conftest import TINY_CNN, invoke

tf = pytest.importorskip("tensorflow")
from fwbench.runners import tf_runner  # noqa: E402  (needs tensorflow)

# Every layer kind and both paddings, so that parity with torch checks the semantics end to end.
TINY_FULL = textwrap.dedent("""
    name = "tinyfull"
    input_shape = [7, 7, 2]
    classes = 4
    batch_size = 6
    seed = 3
    [optimizer]
    name = "{optimizer}"
    learning_rate = 0.01
    {extra}
    [timing]
    warmup = 2
    min_steps = 3
    max_steps = 4
    min_seconds = 0.0
    max_seconds = 1.0
    [parity]
    steps = 4
    [[layers]]
    type = "conv2d"
    filters = 3
    kernel_size = 3
    strides = 2
    padding = "same"
    activation = "tanh"
    [[layers]]
    type = "batchnorm"
    momentum = 0.9
    epsilon = 0.001
    [[layers]]
    type = "maxpool2d"
    pool_size = 2
    padding = "same"
    [[layers]]
    type = "flatten"
    [[layers]]
    type = "dropout"
    rate = 0.25
    [[layers]]
    type = "dense"
    units = 5
    activation = "relu"
    [[layers]]
    type = "batchnorm"
    [[layers]]
    type = "activation"
    activation = "sigmoid"
    [[layers]]
    type = "dense"
    units = 4
""")


def write_workloads(d) -> None:
    """tinyfull (Adam, train), tinysgd (SGD with momentum, train), tinyinfer (inference mode)."""
    (d / "tinyfull.toml").write_text(TINY_FULL.format(optimizer="adam", extra="beta_1 = 0.8\nbeta_2 = 0.99\nepsilon = 1e-6"))
    (d / "tinysgd.toml").write_text(TINY_FULL.format(optimizer="sgd", extra="momentum = 0.9")
                                    .replace('"tinyfull"', '"tinysgd"'))
    (d / "tinyinfer.toml").write_text(TINY_CNN.replace('"tinycnn"', '"tinyinfer"').replace("seed = 1", 'seed = 1\nmode = "infer"'))


def session(cls, device: str = "cpu"):
    s = cls(Job(workload={}, runner="tf-graph", device=device, options=RunnerOptions(threads=1)))
    s.setup()
    return s


@pytest.fixture
def full(workload_dir):
    write_workloads(workload_dir)
    return load_workload("tinyfull")


def test_retrace_counted_when_input_shape_changes(workload_dir):
    spec = load_workload("tinycnn")
    s = session(tf_runner.TFGraphSession)
    s.build(spec, init_params(spec))
    x, y = DataSource(spec).batch(0)
    for _ in range(3):
        s.value(s.train_step(s.put((x, y))))
    assert s.retraces() == 0  # fixed shapes: traced once
    s.value(s.train_step(s.put((x[:3], y[:3]))))  # a smaller batch: a new input signature
    assert s.retraces() == 1
    s.build(spec, init_params(spec))  # a fresh build starts counting afresh
    assert s.retraces() == 0


def test_eager_graph_and_xla_agree(full):
    """The three wrappings of one step give the same losses (BN, same padding, Adam with custom betas)."""
    params = init_params(full)
    batches = [DataSource(full).batch(0)] * 3
    losses = {}
    for cls in (tf_runner.TFEagerSession, tf_runner.TFGraphSession, tf_runner.TFXLASession):
        s = session(cls)
        s.build(full.without_dropout(), params)
        losses[cls.__name__] = [s.value(s.train_step(s.put(b))) for b in batches]
    ref = losses.pop("TFEagerSession")
    for name, got in losses.items():
        np.testing.assert_allclose(got, ref, rtol=1e-5, err_msg=name)
    assert ref[2] < ref[0]  # it trains: the loss on a repeated batch falls


def test_adam_and_momentum_kernels_apply_keras_rules():
    s = session(tf_runner.TFEagerSession)
    g = np.array([0.5, -2.0, 1e-3], np.float32)
    w0 = np.array([1.0, 2.0, -3.0], np.float32)
    spec = load_workload_text("adam", "beta_1 = 0.8\nbeta_2 = 0.95\nepsilon = 1e-3")
    var = tf.Variable(w0)
    opt = tf_runner.Optimizer(spec, [var])
    m = v = np.zeros(3)
    w = w0.astype(np.float64)
    for t in (1, 2, 3):
        opt.apply([tf.constant(g * t)], [var])
        gt = g * t
        m = 0.8 * m + 0.2 * gt
        v = 0.95 * v + 0.05 * gt ** 2
        alpha = 0.1 * np.sqrt(1 - 0.95 ** t) / (1 - 0.8 ** t)
        w = w - alpha * m / (np.sqrt(v) + 1e-3)  # Keras: epsilon added to sqrt(v)
    np.testing.assert_allclose(var.numpy(), w, rtol=1e-5)

    spec = load_workload_text("sgd", "momentum = 0.9")
    var = tf.Variable(w0)
    opt = tf_runner.Optimizer(spec, [var])
    w, vel = w0.astype(np.float64), np.zeros(3)
    for _ in range(3):
        opt.apply([tf.constant(g)], [var])
        vel = 0.9 * vel - 0.1 * g
        w = w + vel
    np.testing.assert_allclose(var.numpy(), w, rtol=1e-5)
    assert s.settings()["layout"] == "NHWC"


def load_workload_text(optimizer: str, extra: str):
    import tomllib

    from fwbench.workload_spec import parse_workload

    text = TINY_FULL.format(optimizer=optimizer, extra=extra).replace("learning_rate = 0.01", "learning_rate = 0.1")
    return parse_workload(tomllib.loads(text))


def test_batchnorm_updates_moving_stats_keras_style(full):
    s = session(tf_runner.TFGraphSession)
    spec = full.without_dropout()
    s.build(spec, init_params(spec))
    x, y = DataSource(spec).batch(0)
    tx = tf.constant(x)
    conv = s.net.vars[0]
    h = tf.nn.conv2d(tx, conv["kernel"], 2, "SAME") + conv["bias"]
    h = np.tanh(h.numpy())
    s.value(s.train_step(s.put((x, y))))
    mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))  # biased variance, as Keras
    np.testing.assert_allclose(s.net.vars[1]["moving_mean"].numpy(), 0.1 * mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(s.net.vars[1]["moving_variance"].numpy(), 0.9 + 0.1 * var, rtol=1e-4)


def test_dropout_is_random_in_training_and_off_in_inference(full):
    s = session(tf_runner.TFXLASession)  # stateless dropout compiles under XLA
    s.build(full, init_params(full))
    x, y = DataSource(full).batch(0)
    p1, p2 = s.predict(x), s.predict(x)
    np.testing.assert_array_equal(p1, p2)
    losses = [s.value(s.train_step(s.put((x, y)))) for _ in range(2)]
    assert all(np.isfinite(losses))


def test_cuda_without_gpu_is_a_skipped_cell():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    from fwbench.errors import CellSkipped

    with pytest.raises(CellSkipped, match="sees no GPU"):
        session(tf_runner.TFEagerSession, device="cuda")


def test_tensorflow_error_is_brief_in_the_cell_reason(workload_dir):
    from fwbench.errors import brief

    spec = load_workload("tinycnn")
    s = session(tf_runner.TFGraphSession)
    s.build(spec, init_params(spec))
    x, y = DataSource(spec).batch(0)
    with pytest.raises(Exception) as info:
        s.value(s.train_step(s.put((x, y + 100))))  # labels outside [0, classes)
    reason = brief(info.value)
    assert "label" in reason.lower() and len(reason) <= 500 and "\n" not in reason


@pytest.mark.slow
def test_tensorflow_runners_end_to_end(workload_dir, cli, tmp_path):
    """Train and infer through `fwbench run`, against torch: parity, retraces and settings recorded.

    One run, 8 workers (TensorFlow's import costs seconds each); SGD is covered by the Keras end-to-end test.
    """
    write_workloads(workload_dir)
    out = tmp_path / "tf.json"
    r = invoke(cli, "run", "-f", "tensorflow", "-r", "torch", "-w", "tinyfull", "-w", "tinyinfer", "-o", str(out))
    assert "oneDNN" not in r.output and "cuda_drivers" not in r.output  # TF's start-up noise stays in the logs
    doc = json.loads(out.read_text())
    cells = {c["id"]: c for c in doc["cells"]}
    assert len(cells) == 8, r.output
    for cid, c in cells.items():
        assert c["status"] == "ok", (cid, c.get("reason"))
        assert c["parity"]["status"] in ("ok", "reference"), (cid, c["parity"])
        if c["runner"] == "torch":
            continue
        st = c["settings"]
        assert st["layout"] == "NHWC" and st["intra_op_threads"] == c["threads"] and st["tf32"] is False
        assert st["jit_compile"] is (c["runner"] == "tf-xla") and st["xla_auto_clustering"] is False
        assert "onednn" in st and st["runtime_configured"] is True
        assert c["retraces"] == (None if c["runner"] == "tf-eager" else 0)
    assert cells["tinyinfer/tf-graph/cpu/0"]["mode"] == "infer"
    assert cells["tinyinfer/tf-xla/cpu/0"]["parity"]["kstep_loss"] is None
    assert doc["parity"]["ok"] is True
    assert r.exit_code == 0, r.output


def test_grouped_conv_gradients_run_through_xla_on_cpu(workload_dir):
    """TensorFlow's CPU kernels have no grouped-convolution gradients, so Net compiles each grouped conv in a
    nested jit function (as Keras's TensorFlow backend does); its gradients equal those of per-group convs.
    Should TensorFlow gain the CPU gradients, the first assertion fails and the workaround can go."""
    from fwbench.runners import tf_net
    from fwbench.workload_spec import Layer

    layer = Layer("conv2d", name="g", filters=6, kernel_size=3, padding="same", groups=3)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((2, 5, 5, 6)).astype(np.float32))
    kernel = tf.Variable(rng.standard_normal((3, 3, 2, 6)).astype(np.float32))

    def grads(conv):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(conv(x, kernel)))
        return [g.numpy() for g in tape.gradient(loss, [x, kernel])]

    with pytest.raises(tf.errors.InvalidArgumentError, match="grouped"):
        grads(lambda x, k: tf_net.conv2d(layer, x, k))  # eager, plain kernels
    def per_group(x, k):
        return tf.concat([tf.nn.conv2d(a, b, 1, "SAME") for a, b in zip(tf.split(x, 3, -1), tf.split(k, 3, -1))], -1)

    nested = tf.function(lambda x, k: tf_net.conv2d(layer, x, k), jit_compile=True)
    for got, want in zip(grads(nested), grads(per_group)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    s = session(tf_runner.TFGraphSession)
    s.build(load_workload("tinycnn"), init_params(load_workload("tinycnn")))
    assert s.settings()["grouped_conv"] is None  # no grouped conv in the workload: nothing to say
    assert s.batchnorm_stats() == []
