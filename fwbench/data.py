"""Deterministic batches, identical for every runner: batch ``i`` depends only on the workload and ``i``.

Data is channels-last NumPy (``[batch, *input_shape]`` float32, int64 labels); runners convert layout
and move to the device *before* timing, so data preparation is never inside a timed step.
Sources: ``synthetic`` (standard-normal inputs, or uniform token ids for a token input, and uniform labels,
one per position for a per-token model), ``digits`` (scikit-learn's bundled 8x8 handwritten digits, scaled
to [0, 1], with a seeded held-out split; nothing is downloaded), and the token sources with a known optimum
of :mod:`fwbench.markov`: ``markov`` (next-token prediction on an order-2 Markov chain) and ``recall``
(classify a sequence by its first token). Token ids are int64 ``[batch, time]``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from fwbench.markov import MarkovChain, recall_batch
from fwbench.workload_spec import WorkloadSpec

Batch = tuple[np.ndarray, np.ndarray]
TOKEN_TEST_SEQUENCES = 256  # held-out sequences of a token source


class DataSource:
    """Batches and (for real data) a held-out test set for one workload."""

    def __init__(self, spec: WorkloadSpec):
        self.spec = spec

    def batch(self, i: int) -> Batch:
        """Training batch number ``i`` (0-based); the same arrays in every process."""
        if self.spec.data == "digits":
            return self._digits_batch(i)
        rng = np.random.default_rng([self.spec.seed, 1, i])
        return self._tokens(rng, self.spec.batch_size) if self.spec.data in ("markov", "recall") \
            else self._synthetic(rng, self.spec.batch_size)

    def _synthetic(self, rng: np.random.Generator, b: int) -> Batch:
        spec = self.spec
        if spec.tokens:
            x = rng.integers(0, spec.vocabulary, size=(b, *spec.input_shape), dtype=np.int64)
        else:
            x = rng.standard_normal((b, *spec.input_shape), dtype=np.float32)
        y = rng.integers(0, spec.classes, size=(b, *spec.label_shape), dtype=np.int64)
        return x, y

    def _tokens(self, rng: np.random.Generator, n: int) -> Batch:
        length = self.spec.input_shape[0]
        if self.spec.data == "recall":
            return recall_batch(rng, n, length, self.spec.classes, self.alphabet)
        seqs = self.chain.sample(rng, n, length + 1)
        return seqs[:, :-1], seqs[:, 1:]

    @property
    def alphabet(self) -> int:
        assert self.spec.alphabet is not None, "a token source's alphabet is set when the workload is parsed"
        return self.spec.alphabet

    @cached_property
    def chain(self) -> MarkovChain:
        return MarkovChain.seeded(self.spec.seed, self.alphabet)

    def optimum(self) -> dict[str, float] | None:
        """For ``markov``: the optimal expected loss, and the loss the true chain scores on the test set."""
        if self.spec.data != "markov":
            return None
        x, y = self._token_test
        seqs = np.concatenate([x[:, :1], y], axis=1)
        return {"optimal_loss": self.chain.optimal_loss(self.spec.input_shape[0]),
                "entropy_rate": self.chain.entropy_rate(), "test_bayes_loss": self.chain.bayes_loss(seqs)}

    @cached_property
    def _token_test(self) -> Batch:
        return self._tokens(np.random.default_rng([self.spec.seed, 5]), TOKEN_TEST_SEQUENCES)

    def batches(self, n: int, start: int = 0) -> list[Batch]:
        return [self.batch(i) for i in range(start, start + n)]

    def test_set(self) -> Batch | None:
        """Held-out inputs and labels, or ``None`` for synthetic data."""
        if self.spec.data in ("markov", "recall"):
            return self._token_test
        if self.spec.data != "digits":
            return None
        x, y = self._digits
        return x[self._split:], y[self._split:]

    @cached_property
    def _digits(self) -> Batch:
        from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

        d = load_digits()
        x = (d.data / 16.0).astype(np.float32).reshape(-1, *self.spec.input_shape)
        y = d.target.astype(np.int64)
        order = np.random.default_rng([self.spec.seed, 2]).permutation(len(y))
        return x[order], y[order]

    @property
    def _split(self) -> int:
        return int(round(len(self._digits[1]) * (1.0 - self.spec.test_fraction)))

    def _digits_batch(self, i: int) -> Batch:
        x, y = self._digits
        n_train, b = self._split, self.spec.batch_size
        per_epoch = max(1, n_train // b)
        epoch, j = divmod(i, per_epoch)
        order = np.random.default_rng([self.spec.seed, 3, epoch]).permutation(n_train)
        idx = order[(j * b) % n_train:(j * b) % n_train + b]
        if len(idx) < b:  # batch larger than the training split: wrap around
            idx = np.resize(order, b)
        return x[idx], y[idx]
