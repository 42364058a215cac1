"""DensePure's majority vote over K reverse seeds (Xiao et al. 2023, Alg. 1), and when it is decided early.

Each noise draw's K purified images are classified and the labels voted; a tie goes to the smallest
class index (the rule of `torch.argmax` on the counts). When only the vote is needed, the engine runs
seeds in rounds: `first_round_seeds` is the fewest that can decide a K-seed majority, and
`seeds_to_decide` the fewest further seeds that could decide a draw still open, so decided draws stop
early with exactly the vote of all K seeds.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def vote_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (..., num_classes) of integer labels (..., K)."""
    counts = torch.zeros(*labels.shape[:-1], num_classes, dtype=torch.long, device=labels.device)
    return counts.scatter_add_(-1, labels, torch.ones_like(labels))


def majority_vote(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The most frequent label along the last axis; ties go to the smallest class index."""
    return vote_counts(labels, num_classes).argmax(dim=-1)


def tied_labels(votes: Mapping[int, int]) -> list[int]:
    """The labels sharing the top count of label -> votes, ascending: more than one is a tie, and the vote (like
    `majority_vote`) takes the first."""
    top = max(votes.values())
    return sorted(label for label, count in votes.items() if count == top)


def first_round_seeds(k: int) -> int:
    """K // 2 + 1: the fewest seeds whose labels can decide a K-seed majority (when they agree)."""
    return k // 2 + 1


def seeds_to_decide(counts: torch.Tensor, remaining: torch.Tensor) -> torch.Tensor:
    """Fewest further seeds (m,) that could fix the vote of counts (m, C) with `remaining` (m,) seeds to go.

    Let L be the leader (argmax, smallest index on ties). The vote is decided when no rival j can
    overtake L with all remaining votes: c_L >= c_j + R + [j < L] (a rival of smaller index wins
    ties, so it needs one vote less). If the next s seeds all vote L, the condition becomes
    2 s >= max_j (c_j + [j < L]) + R - c_L =: gap; no other outcome decides with fewer seeds. So the
    answer is ceil(gap / 2), clamped to [0, R]; 0 means decided.
    """
    leader = counts.argmax(dim=-1, keepdim=True)  # (m, 1)
    classes = torch.arange(counts.shape[-1], device=counts.device)
    rival = (counts + (classes < leader)).scatter(-1, leader, -1)  # the leader is not its own rival
    gap = rival.max(dim=-1).values + remaining - counts.gather(-1, leader).squeeze(-1)
    return torch.minimum(torch.div(gap + 1, 2, rounding_mode="floor").clamp(min=0), remaining)
