"""Checks shared by every policy entry: each failure names ``file:line: entry: what is wrong``.

tomllib gives no positions, so `Lines` finds each entry's header line in the text: good enough to
point an operator at the right place, and it costs nothing per request.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Any

from gateway.errors import PolicyError
from gateway.rates import Rate, parse_rate

_ARRAY_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*([^\]\s]+)[ \t]*\]\]", re.MULTILINE)


class Lines:
    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self._text = text
        self._headers: dict[str, list[int]] | None = None

    def nth_header(self, table: str, index: int) -> int:
        """The line of the ``index``-th ``[[table]]`` header (from 0), else the table's first mention."""
        if self._headers is None:
            # One pass for every header: looked up per entry, a scan each would make loading a
            # policy of N keys cost N² (10,000 keys took 32 s).
            self._headers = {}
            line, position = 1, 0
            for match in _ARRAY_HEADER.finditer(self._text):
                line += self._text.count("\n", position, match.start())
                position = match.start()
                self._headers.setdefault(match[1], []).append(line)
        found = self._headers.get(table, [])
        return found[index] if index < len(found) else self.first(table)

    def first(self, *needles: str) -> int:
        """The first line holding every needle (a header or key naming the entry), else line 1."""
        for number, line in enumerate(self._lines, 1):
            if all(needle in line for needle in needles):
                return number
        return 1




class Checks:
    """Typed reads of one TOML entry, each raising PolicyError with the entry's place."""

    def __init__(self, source: str, lines: Lines, environ: Mapping[str, str]) -> None:
        self.source, self.lines, self.environ = source, lines, environ

    def fail(self, line: int, entry: str, problem: str) -> PolicyError:
        return PolicyError(f"{self.source}:{line}: {entry}: {problem}")

    def fields(self, entry: Mapping[str, Any], allowed: tuple[str, ...], line: int, name: str) -> None:
        unknown = sorted(set(entry) - set(allowed))
        if unknown:
            raise self.fail(line, name, f"unknown field {unknown[0]!r} (allowed: {', '.join(allowed)})")

    def table(self, value: Any, name: str, line: int) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(line, name, "must be a table")
        return value

    def typed(self, entry: Mapping[str, Any], key: str, kind: type | tuple[type, ...], line: int,
              name: str, default: Any = None) -> Any:
        value = entry.get(key, default)
        # bool is an int in Python; a policy that says `id = true` is wrong, not 1.
        if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and bool not in
                                                                  (kind if isinstance(kind, tuple) else (kind,)))):
            raise self.fail(line, name, f"{key} has the wrong type ({type(value).__name__})")
        return value

    def rate(self, value: Any, line: int, name: str) -> Rate | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(line, name, "a rate must be a string like \"100/minute\"")
        try:
            return parse_rate(value)
        except ValueError as exc:
            raise self.fail(line, name, str(exc)) from None

    def globs(self, value: Any, line: int, name: str, what: str) -> re.Pattern[str]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.fail(line, name, f"{what} must be a non-empty list of glob strings")
        return re.compile("|".join(f"(?:{fnmatch.translate(glob)})" for glob in value))

