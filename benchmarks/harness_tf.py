"""Harness overhead, TensorFlow: fwbench's ``tf-graph`` step vs a hand-written ``tf.function`` loop.

Both sides train the same CNN (``fwbench/workloads/cnn.toml``: same shared initial weights, same batches, same
Adam kernel) in this one process. The fwbench side is exactly what a worker times: the session's
``train_step`` + ``value`` driven by :func:`fwbench.timing.measure`. The hand-written side is the loop
a user would write: variables, one ``@tf.function`` step with a ``GradientTape``, ``loss.numpy()``.
The two alternate in short blocks so that load from other processes hits both alike.

    python benchmarks/harness_tf.py [--rounds 30] [--steps 10] [--threads 0]

Prints the median step time of each side and the ratio fwbench / hand-written (target 1.00 ± 0.03).
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


def p10(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 10]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per side per round (a block)")
    ap.add_argument("--threads", type=int, default=0, help="intra/inter-op threads (0 = all cores)")
    args = ap.parse_args()

    from fwbench.data import DataSource
    from fwbench.config import RunnerOptions, resolve_threads
    from fwbench.job import Job
    from fwbench.runners.tf_runner import TFGraphSession
    from fwbench.timing import measure
    from fwbench.weights import init_params
    from fwbench.workload import load_workload

    spec = load_workload("cnn")
    params = init_params(spec)
    batches = DataSource(spec).batches(8)
    session = TFGraphSession(Job(workload=spec.to_dict(), runner="tf-graph", device="cpu",
                                 options=RunnerOptions(threads=resolve_threads(args.threads))))
    session.setup()  # first: thread pools are fixed when the runtime starts
    session.build(spec, params)
    pool = [session.put(b) for b in batches]
    fw_step = lambda i: session.value(session.train_step(pool[i % len(pool)]))  # noqa: E731 (as in worker.py)
    hw_step = hand_written(spec, params, batches)
    policy = spec.with_timing(warmup=0, min_steps=args.steps, max_steps=args.steps, min_seconds=0.0,
                              max_seconds=1e9).timing
    for i in range(5):  # trace both and warm the caches
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
    print(f"\ncnn train step (batch {spec.batch_size}, {session.settings()['intra_op_threads']} threads, "
          f"{len(fw)} steps each): fwbench tf-graph {f * 1e3:.2f} ms, hand-written tf.function {h * 1e3:.2f} ms")
    print(f"ratio fwbench / hand-written = {f / h:.3f} (target 1.00 ± 0.03); median of per-round ratios "
          f"{statistics.median(ratios):.3f}; 10th percentiles (least disturbed by other load) "
          f"{p10(fw) * 1e3:.2f} vs {p10(hw) * 1e3:.2f} ms = {p10(fw) / p10(hw):.3f}; "
          f"retraces: {session.retraces()}")


if __name__ == "__main__":
    main()
