"""`PerObjects`: values per policy object, found by identity, bounded."""

from __future__ import annotations

from gateway.memo import PerObjects


def test_values_are_found_by_the_objects_identity_not_their_equality() -> None:
    memo: PerObjects[str] = PerObjects()
    a, b, twin = ["k"], ["api"], ["k"]
    assert memo.get(a, b) is None
    assert memo.put("takes", a, b) == "takes"
    assert memo.get(a, b) == "takes"
    assert memo.get(twin, b) is None  # equal, but another object
    assert memo.get(b, a) is None  # the order of the objects counts


def test_the_cache_is_bounded() -> None:
    memo: PerObjects[int] = PerObjects(limit=3)
    held = [object() for _ in range(4)]
    for n, obj in enumerate(held):
        memo.put(n, obj)
    assert memo.get(held[3]) == 3
    assert [memo.get(obj) for obj in held[:3]] == [None, None, None]  # cleared when full
