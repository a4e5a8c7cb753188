"""Harness overhead, TensorFlow: fwbench's ``tf-graph`` step vs a hand-written ``tf.function`` loop.

Three workloads, each trained by both sides in this one process from the same shared initial weights on the
same batches with the same fused optimizer kernel:

- the CNN of ``fwbench/workloads/cnn.toml`` (Adam);
- ResNet-20 of ``fwbench/workloads/resnet20.toml`` (a graph workload: batch norm, identity and projection
  shortcuts; SGD with momentum through ``ResourceApplyKerasMomentum``);
- the GPT-style causal decoder of ``fwbench/workloads/transformer.toml`` (token ids, ``tf.gather`` embedding
  plus a learned position table, einsum attention with a ``band_part`` causal mask, layer norm through
  ``tf.nn.moments``, exact GELU, per-token cross-entropy; Adam 3e-3). Its hand-written side asserts that
  its initial loss on the first batch matches ``fwbench.reference`` within 1e-4 relative.

The fwbench side is exactly what a worker times: the session's ``train_step`` + ``value`` driven by
:func:`fwbench.timing.measure`. The hand-written side is the loop a user would write: variables, one
``@tf.function`` step with a ``GradientTape``, ``loss.numpy()``. The two alternate in short blocks (rounds)
so that load from other processes hits both alike.

    python benchmarks/harness_tf.py [--workload cnn|resnet20|transformer|all] [--rounds 30] [--steps 10] [--threads 0]
    python benchmarks/harness_tf.py --quick     # a smoke run: 2 rounds of 2 steps, every workload at batch 16

Prints, per workload, the median step time of each side, the ratio fwbench / hand-written (target
1.00 ± 0.03) and the spread of the per-round ratios (quartiles and range).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def hand_written(spec, params, batches):
    """The CNN of cnn.toml written out by hand: conv-pool-conv-pool-flatten-dense-dense, Keras-rule Adam."""
    import tensorflow as tf

    (c1, _, c2, _, _, d1, d2) = params
    names = ("kernel", "bias")
    weights = [tf.Variable(p[n]) for p in (c1, c2, d1, d2) for n in names]
    slots = [(tf.Variable(tf.zeros_like(w)), tf.Variable(tf.zeros_like(w))) for w in weights]
    o = spec.optimizer
    lr, b1, b2, eps = (tf.constant(v, tf.float32) for v in (o.learning_rate, o.beta_1, o.beta_2, o.epsilon))
    b1p, b2p = tf.Variable(1.0), tf.Variable(1.0)

    @tf.function
    def step(x, y):
        k1, bb1, k2, bb2, k3, bb3, k4, bb4 = weights
        with tf.GradientTape() as tape:
            h = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, k1, 1, "VALID") + bb1), 2, 2, "VALID")
            h = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(h, k2, 1, "VALID") + bb2), 2, 2, "VALID")
            h = tf.reshape(h, [tf.shape(h)[0], -1])
            logits = tf.matmul(tf.nn.relu(tf.matmul(h, k3) + bb3), k4) + bb4
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        grads = tape.gradient(loss, weights)
        p1, p2 = b1p.assign(b1p * b1), b2p.assign(b2p * b2)
        for w, (m, v), g in zip(weights, slots, grads):
            tf.raw_ops.ResourceApplyAdam(var=w.handle, m=m.handle, v=v.handle, beta1_power=p1, beta2_power=p2,
                                         lr=lr, beta1=b1, beta2=b2, epsilon=eps, grad=g)
        return loss

    data = [(tf.constant(x), tf.constant(y)) for x, y in batches]
    return lambda i: float(step(*data[i % len(data)]).numpy())


def hand_written_resnet20(spec, params, batches):
    """ResNet-20 of resnet20.toml written out by hand: conv-bn-relu stem, 3 stages of 3 basic blocks (the first
    of stages 2 and 3 strided, with a 1x1 conv + bn projection shortcut), global average pooling, dense;
    Keras-rule batch norm (momentum 0.9, epsilon 1e-5) and SGD with momentum (the fused Keras kernel)."""
    import tensorflow as tf

    weights = iter([p for p in params if p])  # the nodes with parameters, in order: conv, bn, ..., dense

    def conv_bn():
        conv, bn = next(weights), next(weights)
        return {"kernel": tf.Variable(conv["kernel"]), "gamma": tf.Variable(bn["gamma"]),
                "beta": tf.Variable(bn["beta"]), "mean": tf.Variable(bn["moving_mean"], trainable=False),
                "var": tf.Variable(bn["moving_variance"], trainable=False)}

    stem = conv_bn()
    blocks = []  # (stride, first conv-bn, second conv-bn, projection conv-bn or None)
    for stage in range(3):
        for b in range(3):
            stride = 2 if stage > 0 and b == 0 else 1
            blocks.append((stride, conv_bn(), conv_bn(), conv_bn() if stride == 2 else None))
    dense = next(weights)
    w_out, b_out = tf.Variable(dense["kernel"]), tf.Variable(dense["bias"])
    trainable = [v for cb in [stem] + [c for blk in blocks for c in blk[1:] if c] for v in cb.values()
                 if v.trainable] + [w_out, b_out]
    accum = [tf.Variable(tf.zeros_like(v)) for v in trainable]
    o = spec.optimizer
    lr, momentum = tf.constant(o.learning_rate, tf.float32), tf.constant(o.momentum, tf.float32)

    def conv_bn_apply(x, p, stride, padding="SAME"):
        h = tf.nn.conv2d(x, p["kernel"], stride, padding)
        mean, var = tf.nn.moments(h, axes=[0, 1, 2])
        p["mean"].assign(p["mean"] * 0.9 + mean * 0.1)
        p["var"].assign(p["var"] * 0.9 + var * 0.1)
        return tf.nn.batch_normalization(h, mean, var, p["beta"], p["gamma"], 1e-5)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            h = tf.nn.relu(conv_bn_apply(x, stem, 1))
            for stride, a, b, projection in blocks:
                out = conv_bn_apply(tf.nn.relu(conv_bn_apply(h, a, stride)), b, 1)
                shortcut = conv_bn_apply(h, projection, 2, "VALID") if projection else h
                h = tf.nn.relu(out + shortcut)
            logits = tf.matmul(tf.reduce_mean(h, axis=[1, 2]), w_out) + b_out
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        grads = tape.gradient(loss, trainable)
        for w, a, g in zip(trainable, accum, grads):
            tf.raw_ops.ResourceApplyKerasMomentum(var=w.handle, accum=a.handle, lr=lr, grad=g, momentum=momentum)
        return loss

    data = [(tf.constant(x), tf.constant(y)) for x, y in batches]
    return lambda i: float(step(*data[i % len(data)]).numpy())


def hand_written_transformer(spec, params, batches):
    """The GPT-style decoder of transformer.toml written out by hand: variables in Keras's layout, ``tf.gather``
    token embedding plus the position table, pre-LN blocks (layer norm through ``tf.nn.moments``, epsilon 1e-5;
    einsum q/k/v and output projections, a ``band_part`` causal mask, ``tf.nn.softmax``; an MLP with exact
    GELU), a final layer norm and the dense head; per-token cross-entropy; Keras-rule Adam (the fused kernel).
    Asserts that its initial loss on the first batch matches fwbench's NumPy reference within 1e-4 relative."""
    import math

    import tensorflow as tf

    from fwbench import reference

    weights = iter([p for p in params if p])  # tok, pos; per block ln, attention, ln, dense, dense; ln, head

    def var(p):
        return {k: tf.Variable(v) for k, v in p.items()}

    tok, pos = tf.Variable(next(weights)["embeddings"]), tf.Variable(next(weights)["embeddings"])
    n_blocks = sum(layer.kind == "multi_head_attention" for layer in spec.layers)
    blocks = [tuple(var(next(weights)) for _ in range(5)) for _ in range(n_blocks)]  # ln1, attn, ln2, fc1, fc2
    ln_f, head = var(next(weights)), var(next(weights))
    assert next(weights, None) is None
    trainable = [tok, pos] + [v for blk in blocks for p in blk for v in p.values()] + list(ln_f.values()) \
        + list(head.values())
    key_dim = blocks[0][1]["query_kernel"].shape[2]
    scale = tf.constant(1.0 / math.sqrt(key_dim), tf.float32)
    slots = [(tf.Variable(tf.zeros_like(w)), tf.Variable(tf.zeros_like(w))) for w in trainable]
    o = spec.optimizer
    lr, b1, b2, eps = (tf.constant(v, tf.float32) for v in (o.learning_rate, o.beta_1, o.beta_2, o.epsilon))
    b1p, b2p = tf.Variable(1.0), tf.Variable(1.0)

    def layer_norm(x, p):
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + 1e-5) * p["gamma"] + p["beta"]

    def dense(x, p):
        return tf.einsum("btd,du->btu", x, p["kernel"]) + p["bias"]

    def attention(x, p):
        q = tf.einsum("btd,dhk->bthk", x, p["query_kernel"]) + p["query_bias"]
        k = tf.einsum("btd,dhk->bthk", x, p["key_kernel"]) + p["key_bias"]
        v = tf.einsum("btd,dhk->bthk", x, p["value_kernel"]) + p["value_bias"]
        scores = tf.einsum("bqhk,bshk->bhqs", q, k) * scale
        t = tf.shape(x)[1]
        causal = tf.cast(tf.linalg.band_part(tf.ones([t, t]), -1, 0), tf.bool)  # key s <= query q
        probs = tf.nn.softmax(tf.where(causal, scores, -1e9), axis=-1)
        heads = tf.einsum("bhqs,bshk->bqhk", probs, v)
        return tf.einsum("bthk,hkd->btd", heads, p["output_kernel"]) + p["output_bias"]

    def forward(x):
        h = tf.gather(tok, x) + pos[:tf.shape(x)[1]]
        for ln1, attn, ln2, fc1, fc2 in blocks:
            h = h + attention(layer_norm(h, ln1), attn)
            h = h + dense(tf.nn.gelu(dense(layer_norm(h, ln2), fc1), approximate=False), fc2)
        return dense(layer_norm(h, ln_f), head)

    def loss_of(x, y):
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=forward(x)))

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_of(x, y)
        grads = tape.gradient(loss, trainable)
        p1, p2 = b1p.assign(b1p * b1), b2p.assign(b2p * b2)
        for w, (m, v), g in zip(trainable, slots, grads):
            tf.raw_ops.ResourceApplyAdam(var=w.handle, m=m.handle, v=v.handle, beta1_power=p1, beta2_power=p2,
                                         lr=lr, beta1=b1, beta2=b2, epsilon=eps, grad=tf.convert_to_tensor(g))
        return loss

    data = [(tf.constant(x), tf.constant(y)) for x, y in batches]
    # the layout written out by hand must reproduce fwbench's reference: the initial loss on the first batch
    x0, y0 = batches[0]
    mine, ref = float(loss_of(*data[0])), reference.cross_entropy(reference.forward(spec, params, x0), y0)
    assert abs(mine - ref) <= 1e-4 * abs(ref), f"initial loss {mine} vs reference {ref}"
    print(f"transformer hand-written initial loss {mine:.8f}, reference {ref:.8f} "
          f"(relative difference {abs(mine - ref) / abs(ref):.1e})")
    return lambda i: float(step(*data[i % len(data)]).numpy())


HAND_WRITTEN = {"cnn": hand_written, "resnet20": hand_written_resnet20, "transformer": hand_written_transformer}


def p10(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 10]


def quartiles(xs: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return q[0], q[2]


def compare(name: str, args: argparse.Namespace, threads: int) -> None:
    """Interleaved rounds of fwbench's tf-graph step and the hand-written loop on one workload."""
    import dataclasses

    from fwbench.data import DataSource
    from fwbench.config import RunnerOptions
    from fwbench.job import Job
    from fwbench.runners.tf_runner import TFGraphSession
    from fwbench.timing import measure
    from fwbench.weights import init_params
    from fwbench.workload import load_workload

    spec = load_workload(name)
    if args.batch:
        spec = dataclasses.replace(spec, batch_size=args.batch)
    params = init_params(spec)
    batches = DataSource(spec).batches(8)
    session = TFGraphSession(Job(workload=spec.to_dict(), runner="tf-graph", device="cpu",
                                 options=RunnerOptions(threads=threads)))
    session.setup()  # first: thread pools are fixed when the runtime starts
    session.build(spec, params)
    pool = [session.put(b) for b in batches]
    fw_step = lambda i: session.value(session.train_step(pool[i % len(pool)]))  # noqa: E731 (as in worker.py)
    hw_step = HAND_WRITTEN[name](spec, params, batches)
    policy = spec.with_timing(warmup=0, min_steps=args.steps, max_steps=args.steps, min_seconds=0.0,
                              max_seconds=1e9).timing
    first = fw_step(0), hw_step(0)  # the same weights on the same batch: the same loss
    for i in range(1, 5):  # trace both and warm the caches
        fw_step(i), hw_step(i)

    fw, hw, ratios = [], [], []  # ratios: per round, of the two blocks' medians
    for r in range(args.rounds):
        fw += measure(fw_step, policy).step_s
        for i in range(args.steps):
            t0 = time.perf_counter()
            hw_step(i)
            hw.append(time.perf_counter() - t0)
        ratios.append(statistics.median(fw[-args.steps:]) / statistics.median(hw[-args.steps:]))
    f, h = statistics.median(fw), statistics.median(hw)
    q1, q3 = quartiles(ratios)
    print(f"\n{name} train step (batch {spec.batch_size}, {session.settings()['intra_op_threads']} threads, "
          f"{len(fw)} steps each in {args.rounds} rounds): fwbench tf-graph {f * 1e3:.2f} ms, "
          f"hand-written tf.function {h * 1e3:.2f} ms; first loss {first[0]:.6f} vs {first[1]:.6f}")
    print(f"ratio fwbench / hand-written = {f / h:.3f} (target 1.00 ± 0.03); per-round ratios: median "
          f"{statistics.median(ratios):.3f}, quartiles {q1:.3f}–{q3:.3f}, range {min(ratios):.3f}–{max(ratios):.3f}; "
          f"10th percentiles (least disturbed by other load) {p10(fw) * 1e3:.2f} vs {p10(hw) * 1e3:.2f} ms = "
          f"{p10(fw) / p10(hw):.3f}; retraces: {session.retraces()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=[*HAND_WRITTEN, "all"], default="all")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per side per round (a block)")
    ap.add_argument("--threads", type=int, default=0, help="intra/inter-op threads (0 = all cores)")
    ap.add_argument("--batch", type=int, default=0, help="override the workloads' batch size (0 = theirs)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds of 2 steps, batch 16")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.steps, args.batch = 2, 2, args.batch or 16

    from fwbench.config import resolve_threads

    threads = resolve_threads(args.threads)
    for name in (list(HAND_WRITTEN) if args.workload == "all" else [args.workload]):
        compare(name, args, threads)


if __name__ == "__main__":
    main()
