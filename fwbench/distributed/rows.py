"""The layout of the row each rank gathers to every rank: written by :mod:`fwbench.distributed.rank` (worker
side), read by :mod:`fwbench.distributed.aggregate` (parent side). A leaf: it imports nothing of fwbench.

A row is ``[rank, node_rank, elapsed_s, steps, final_loss, *warmup_s, *step_s]``, floats throughout so that
it travels through the engines' float64 collectives; ``steps`` timed steps follow the warm-up steps.
"""

from __future__ import annotations

from dataclasses import dataclass

FIXED_FIELDS = ("rank", "node_rank", "elapsed_s", "steps", "final_loss")  # head of a gathered row


@dataclass(frozen=True)
class RankRow:
    rank: int
    node_rank: int
    elapsed_s: float
    final_loss: float
    warmup_s: list[float]
    step_s: list[float]

    def pack(self) -> list[float]:
        """The row as it is gathered (see the module's docstring)."""
        return [float(self.rank), float(self.node_rank), self.elapsed_s, float(len(self.step_s)), self.final_loss,
                *self.warmup_s, *self.step_s]


def split_row(row: list[float], warmup: int) -> RankRow:
    """One gathered row -> its fields (``warmup`` timed warm-up steps precede the timed steps)."""
    head = len(FIXED_FIELDS)
    rank, node_rank, elapsed_s, steps, final_loss = row[:head]
    times = row[head:head + warmup + int(steps)]
    return RankRow(rank=int(rank), node_rank=int(node_rank), elapsed_s=float(elapsed_s), final_loss=float(final_loss),
                   warmup_s=list(times[:warmup]), step_s=list(times[warmup:]))
