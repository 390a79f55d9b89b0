"""The FastGAN family's data: conditioned slices (S1's Table 2 condition vectors) and S1's augmentation.

Built on the generic shard reader (:class:`spectsynth.datasets.SliceShard`); every draw comes from
``numpy.random.default_rng([seed, epoch, index])`` as in the paired datasets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...datasets import SliceShard, item_index, shift_rows
from ...labels import LEVELS, PATTERNS

__all__ = ["GANSliceDataset", "condition_vector", "s1_augment"]


def s1_augment(stack: np.ndarray, pattern: str, rng: np.random.Generator, *,
               neighbour_average: bool = True, shift_px: int = 2,
               flip_patterns: Sequence[str] = ("normal", "bilateral")) -> np.ndarray:
    """S1's augmentation of one (3, H, W) stack [slice, inferior, superior] -> (1, H, W).

    Weighted average with a random craniocaudal neighbour (Eq. 6, ``w ~ U(0, 1)``), then an
    anterior-posterior shift by ``t`` in -shift_px..shift_px rows (zero fill), then a
    horizontal flip with probability 1/2 for the patterns in ``flip_patterns`` only (a flip
    would turn a left-sided defect into a right-sided one, which unilateral labels do not say).
    """
    img = stack[0]
    if neighbour_average:
        nb = stack[1 + int(rng.integers(0, 2))]
        w = float(rng.uniform(0.0, 1.0))
        img = w * img + (1.0 - w) * nb
    if shift_px:
        img = shift_rows(img, int(rng.integers(-shift_px, shift_px + 1)))
    if pattern in flip_patterns and rng.random() < 0.5:
        img = img[:, ::-1]
    return np.ascontiguousarray(img[None], dtype=np.float32)


def condition_vector(level: str | None, pattern: str, use_level: bool = True) -> np.ndarray:
    """S1's condition vector (Table 2): one-hot level (CER, BG, COR) then one-hot pattern
    (normal, unilateral, bilateral) for dataset A (``use_level``), the pattern alone for B."""
    p = np.eye(len(PATTERNS), dtype=np.float32)[PATTERNS.index(pattern)]
    if not use_level:
        return p
    lv = np.eye(len(LEVELS), dtype=np.float32)[LEVELS.index(level)]
    return np.concatenate([lv, p])


class GANSliceDataset:
    """S1 slices for the conditional GAN.

    ``ds[i]`` gives the un-augmented slice; ``ds[(i, epoch)]`` the augmented one (what the
    training sampler asks for).  Items are dicts ``image`` (1, H, W) in [-1, 1] (``2 x - 1``
    of the max-normalised slice), ``cond`` (K,) float32 one-hot (level x pattern for variant
    A, pattern for B), ``index``.  Only rows at ``condition['levels']`` are used.
    """

    def __init__(self, shard: SliceShard, condition: Mapping, *, augment: Mapping | None = None,
                 seed: int = 0):
        self.shard = shard
        self.levels = list(condition.get("levels") or LEVELS)
        self.use_level = bool(condition.get("use_level", True))
        keep = np.isin(shard.level, [LEVELS.index(lv) for lv in self.levels])
        self.items = np.flatnonzero(keep)
        self.augment = dict(augment or {})
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.items)

    def cond_vector(self, level: str, pattern: str) -> np.ndarray:
        """One-hot condition vector of (level, pattern) as S1's Table 2 (level first)."""
        return condition_vector(level, pattern, self.use_level)

    def conditions(self) -> list[tuple[str, str]]:
        """(level, pattern) pairs present in this dataset, in LEVELS x PATTERNS order."""
        have = set(zip(self.shard.level[self.items], self.shard.pattern[self.items]))
        return [(LEVELS[a], PATTERNS[b]) for a in range(len(LEVELS)) for b in range(len(PATTERNS))
                if (a, b) in have]

    def labels(self, i: int) -> tuple[str, str]:
        j = self.items[i]
        return LEVELS[self.shard.level[j]], PATTERNS[self.shard.pattern[j]]

    def __getitem__(self, key) -> dict[str, Any]:
        i, epoch = item_index(key)
        j = int(self.items[i])
        level, pattern = LEVELS[self.shard.level[j]], PATTERNS[self.shard.pattern[j]]
        stack = self.shard.images(j)
        if epoch is None:
            img = stack[:1].astype(np.float32)
        else:
            rng = np.random.default_rng([self.seed, epoch, j])
            img = s1_augment(stack, pattern, rng, **self.augment)
        return {"image": img * 2.0 - 1.0, "cond": self.cond_vector(level, pattern), "index": j}
