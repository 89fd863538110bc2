"""Values derived once per policy object (an access key, an API), found by the objects' identity.

Policy entries never change once loaded, so what a request derives from them (the identity headers of
a key, the takes of an API and key) can be built on first use and reused. Entries are found by the
objects' ``id()``; each entry holds its objects, so no id can be reused by another object while it is
cached. Bounded: a policy reloaded many times must not grow the cache without end.
"""

from __future__ import annotations

from typing import Generic, TypeVar

V = TypeVar("V")


class PerObjects(Generic[V]):
    def __init__(self, limit: int = 65536) -> None:
        self._limit = limit
        self._entries: dict[tuple[int, ...], tuple[tuple[object, ...], V]] = {}

    def get(self, *objects: object) -> V | None:
        entry = self._entries.get(tuple(map(id, objects)))
        return None if entry is None else entry[1]

    def put(self, value: V, *objects: object) -> V:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[tuple(map(id, objects))] = (objects, value)
        return value
