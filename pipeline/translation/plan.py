"""The batches of a translation, the share of one shard, and the per-image style seeds.

The plan is a pure function of the input and the batch size, computed identically by every
process: images are grouped by size (a batch is one tensor, so its images must share H x W),
groups in order of first appearance, images in input order within a group, and each group is
cut into batches of ``batch_size``. A shard is a contiguous run of these batches. So a run split
into shards computes exactly the batches of a single run, and a resumed run recomputes whole
batches of the plan: both give the bytes of an uninterrupted single run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based, as torchrun ranks)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= I < N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` -> ``Shard(I, N)``."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ValueError(f"shard {text!r} must look like I/N, e.g. 0/4 (I = 0..N-1)")
        return cls(int(match[1]), int(match[2]))

    @property
    def whole(self) -> bool:
        return self.count == 1

    def take(self, items: Sequence[T]) -> Sequence[T]:
        """This shard's contiguous slice of ``items``; the slices of all shards partition it."""
        n = len(items)
        return items[self.index * n // self.count:(self.index + 1) * n // self.count]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def plan_batches(sizes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Batches of image indices for images of ``sizes`` ``(height, width)``; see the module doc."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    groups: dict[tuple[int, int], list[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault(size, []).append(index)
    return [members[i:i + batch_size] for members in groups.values()
            for i in range(0, len(members), batch_size)]


def style_seed(seed: int, key: str) -> int:
    """The 63-bit seed of an image's random styles: a hash of the run's ``seed`` and the image's
    key, so an image's styles do not depend on its batch, shard or position in the input."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
