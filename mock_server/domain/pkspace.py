"""Request pks no two namespaces of one server share: each allocates from blocks it owns."""

from __future__ import annotations

BLOCK_SIZE = 10_000
# Pks stay 32-bit signed integers, as many clients store them.
_BLOCKS = (2**31 - 1) // BLOCK_SIZE
# The default namespace draws its first pk from 10,000-60,000, like the vendor's (blocks 1 to 6);
# the others start in a block of their own above those.
_SHARED_LOW_BLOCKS = 7


class PkSpace:
    """Which namespace owns which block of pks; a block is owned from the first pk allocated in it."""

    def __init__(self) -> None:
        self._owners: dict[int, str] = {}

    @staticmethod
    def first_pk(namespace_is_default: bool, seed: int, draw: int) -> int:
        """Where a namespace's pks start: ``draw`` (10,000-60,000) for the default namespace, else
        a place in a block derived from its seed, so that it is the same on every run."""
        if namespace_is_default:
            return draw
        block = _SHARED_LOW_BLOCKS + seed % (_BLOCKS - _SHARED_LOW_BLOCKS)
        return block * BLOCK_SIZE + draw % BLOCK_SIZE

    def allocate(self, namespace: str, candidate: int) -> int:
        """``candidate`` when its block is free or ``namespace``'s own; else the first pk of the next
        block nobody owns (the namespace's sequence then goes on from there)."""
        block = candidate // BLOCK_SIZE
        if self._owners.setdefault(block, namespace) == namespace:
            return candidate
        while self._owners.get(block, namespace) != namespace:
            block = block + 1 if block + 1 < _BLOCKS else _SHARED_LOW_BLOCKS
        self._owners[block] = namespace
        return block * BLOCK_SIZE

    def hold(self, namespace: str, pk: int) -> None:
        """Mark the block of ``pk`` (a request restored from a data dir or an archive) as the namespace's."""
        self._owners.setdefault(pk // BLOCK_SIZE, namespace)
