"""Seeded token sources with a known optimum, for learning that can be checked (pure NumPy, no download).

``markov``: a fixed random order-2 Markov chain over the first ``alphabet`` token ids. Each pair of
previous tokens ``(a, b)`` has its own next-token distribution, drawn once from a symmetric Dirichlet with
concentration :data:`CONCENTRATION` (so some continuations are likely and most are rare). A sequence starts
from the chain's stationary distribution of pairs, so every position is distributed alike. A language model
reads tokens ``x[0:T]`` and predicts ``x[1:T+1]``:

- position 0 sees one token, so the best it can score is ``H(X1 | X0)``;
- every later position sees two or more, and the chain is order 2, so the best is the entropy rate
  ``H = sum_ab pi(a, b) * H(P[a, b, :])``, computed exactly from the stationary distribution ``pi``;
- so the optimal expected loss is ``(H(X1 | X0) + (T - 1) * H) / T`` nats per token, and on a given test
  set the true chain scores an exact, computable loss (:meth:`MarkovChain.bayes_loss`).

``recall``: label = the first token of the sequence, one of ``classes`` key tokens; every other token is
noise drawn uniformly from ids ``classes .. alphabet - 1``. Only a model that carries the first token through
the whole sequence can beat chance (1 / classes); a perfect one scores accuracy 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONCENTRATION = 0.2


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis (0 log 0 = 0)."""
    logp = np.log(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(axis=-1)


@dataclass(frozen=True)
class MarkovChain:
    """An order-2 chain: ``transitions[a, b]`` is the distribution of the token after ``a, b``."""

    transitions: np.ndarray  # [A, A, A]

    @classmethod
    def seeded(cls, seed: int, alphabet: int) -> "MarkovChain":
        rng = np.random.default_rng([seed, 4, alphabet])
        return cls(rng.dirichlet(np.full(alphabet, CONCENTRATION), size=(alphabet, alphabet)))

    @property
    def alphabet(self) -> int:
        return self.transitions.shape[0]

    def stationary(self) -> np.ndarray:
        """The stationary distribution ``pi[a, b]`` of consecutive pairs (the chain on pairs' eigenvector 1)."""
        a = self.alphabet
        pair = np.zeros((a * a, a * a))  # (a, b) -> (b, c) with probability P[a, b, c]
        for i in range(a):
            for j in range(a):
                pair[i * a + j, j * a:(j + 1) * a] = self.transitions[i, j]
        values, vectors = np.linalg.eig(pair.T)
        v = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
        return (v / v.sum()).reshape(a, a)

    def entropy_rate(self) -> float:
        """``H(X_t | X_{t-2}, X_{t-1})`` under the stationary distribution, in nats."""
        return float((self.stationary() * _entropy(self.transitions)).sum())

    def first_step_entropy(self) -> float:
        """``H(X1 | X0)`` under the stationary distribution: the best loss with one token of context."""
        pi = self.stationary()
        return float(_entropy(pi.reshape(-1)) - _entropy(pi.sum(axis=1)))

    def optimal_loss(self, length: int) -> float:
        """The best expected mean next-token loss over ``length`` predicted positions, in nats."""
        return (self.first_step_entropy() + (length - 1) * self.entropy_rate()) / length

    def sample(self, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
        """``n`` sequences of ``length`` tokens (int64), starting from the stationary pair distribution."""
        a = self.alphabet
        pi = self.stationary().reshape(-1)
        first = rng.choice(a * a, size=n, p=pi / pi.sum())
        out = np.empty((n, length), np.int64)
        out[:, 0], out[:, 1] = divmod(first, a)
        cumulative = np.cumsum(self.transitions, axis=-1)
        for t in range(2, length):
            u = rng.random(n)[:, None]
            row = cumulative[out[:, t - 2], out[:, t - 1]]
            out[:, t] = np.minimum((u > row).sum(axis=1), a - 1)
        return out

    def bayes_loss(self, tokens: np.ndarray) -> float:
        """The mean loss the true chain scores predicting ``tokens[:, 1:]`` from what precedes each one."""
        pi = self.stationary()
        conditional = pi / pi.sum(axis=1, keepdims=True)  # P(x1 | x0)
        first = -np.log(conditional[tokens[:, 0], tokens[:, 1]])
        later = -np.log(self.transitions[tokens[:, :-2], tokens[:, 1:-1], tokens[:, 2:]])
        return float(np.concatenate([first[:, None], later], axis=1).mean())


def recall_batch(rng: np.random.Generator, n: int, length: int, classes: int, alphabet: int) \
        -> tuple[np.ndarray, np.ndarray]:
    """``recall`` sequences: the label is the first token (a key ``< classes``); the rest is noise."""
    labels = rng.integers(0, classes, size=n, dtype=np.int64)
    x = rng.integers(classes, alphabet, size=(n, length), dtype=np.int64)
    x[:, 0] = labels
    return x, labels
