"""What changed in a namespace since the data dir last saved it: the store writes only that."""

from __future__ import annotations

from dataclasses import dataclass, field

# The namespace-wide collections a client changes one item at a time.
PIECES = ("tokens", "raos", "images", "metadata")


@dataclass
class ChangeSet:
    """Requests (by pk) and pieces changed; ``everything`` after a reset or a restore."""

    requests: set[int] = field(default_factory=set)
    pieces: set[str] = field(default_factory=set)
    everything: bool = False

    def __bool__(self) -> bool:
        return bool(self.requests or self.pieces or self.everything)

    def update(self, other: ChangeSet) -> None:
        """Add what ``other`` holds."""
        self.requests |= other.requests
        self.pieces |= other.pieces
        self.everything |= other.everything

    def concerns(self, pk: int | None) -> bool:
        """Whether request ``pk`` is among the changes (any change at all when ``pk`` is None)."""
        if pk is None:
            return bool(self)
        return self.everything or pk in self.requests


class ChangeLog:
    """Collects what the domain says it changed, until the store takes it; nothing until a store
    asks for it with :meth:`record` (in memory, the set would only grow)."""

    def __init__(self) -> None:
        self._pending = ChangeSet()
        self._recording = False

    def record(self) -> None:
        """Keep what changes from now on."""
        self._recording = True

    def request(self, pk: int) -> None:
        """Request ``pk`` (or something kept with it: documents, SMS, webhooks, signing) changed."""
        if self._recording:
            self._pending.requests.add(pk)

    def pieces(self, *names: str) -> None:
        """These namespace-wide collections (:data:`PIECES`) changed; all of them without names."""
        if self._recording:
            self._pending.pieces.update(names or PIECES)

    def everything(self) -> None:
        """The whole namespace changed (a reset)."""
        if self._recording:
            self._pending.everything = True

    def holds(self, pk: int | None) -> bool:
        """Whether a change to request ``pk`` (to anything when None) waits to be taken."""
        return self._pending.concerns(pk)

    def take(self) -> ChangeSet:
        """What changed since the last call, and start afresh."""
        taken, self._pending = self._pending, ChangeSet()
        return taken

    def give_back(self, changes: ChangeSet) -> None:
        """Put back what a failed save took, so that the next save writes it."""
        self._pending.update(changes)
