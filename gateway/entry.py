"""One row of the error table (`gateway.catalog.Err`): wire code, HTTP status, message template."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway.echo import echo


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of the table: wire code, HTTP status, message template and its default values."""

    code: str
    status: int
    template: str
    meaning: str
    defaults: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    seed: bool = True  # a row of the common error table; False: one the gateway adds (STS...)

    def message(self, params: Mapping[str, str] | None = None) -> str:
        if not self.defaults and not params:
            return self.template
        if not params:
            return self.template.format_map(self.defaults)
        return self.template.format_map({**self.defaults, **{k: echo(v) for k, v in params.items()}})


def entry(code: str, status: int, template: str, meaning: str, **defaults: str) -> Entry:
    return Entry(code, status, template, meaning, MappingProxyType(defaults))


def beyond(code: str, status: int, template: str, meaning: str) -> Entry:
    """A row beyond the seed table (tests/data/common-errors.seed.txt), with Alibaba Cloud's status."""
    return Entry(code, status, template, meaning, MappingProxyType({}), seed=False)
