"""Units for #16 items 6, 9, 13, 18: declared types, repeated values, canonical resources, patterns."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.call import Call
from gateway.checks.access import Access
from gateway.checks.params import TYPES, Params, valid
from gateway.errors import Err, GatewayError
from gateway.policy import ApiSpec, ParamSpec, Policy, PolicyError, Resource, parse_policy
from tests.conftest import DATA
from tests.support.calls import a_call

# -- item 9: the types say what they mean ------------------------------------------------------------

INT32, INT64 = 2**31, 2**63


@pytest.mark.parametrize(("kind", "value"), [
    ("Integer", str(INT32 - 1)), ("Integer", str(-INT32)), ("Integer", "0"), ("Integer", "-0"), ("Integer", "007"),
    ("Long", str(INT64 - 1)), ("Long", str(-INT64)),
    ("Float", "2.5"), ("Float", "-2"), ("Float", "1e3"), ("Float", "1.5E-7"), ("Float", "1e+300"),
    ("Boolean", "true"), ("Boolean", "false"),
])
def test_a_value_of_the_type(kind: str, value: str) -> None:
    assert TYPES[kind](value) is not None


@pytest.mark.parametrize(("kind", "value"), [
    ("Integer", str(INT32)), ("Integer", str(-INT32 - 1)), ("Integer", "+1"), ("Integer", "1_0"), ("Integer", " 1"),
    ("Integer", "1\n"), ("Integer", "\u0661"), ("Integer", "\uff11"), ("Integer", "1.0"), ("Integer", ""),
    ("Integer", "-"), ("Long", str(INT64)), ("Long", str(-INT64 - 1)), ("Long", "1" * 10_000),
    ("Long", "0" * 30 + "1"),
    ("Float", "1_000"), ("Float", " 2.5\n"), ("Float", "\u0662.5"), ("Float", "inf"), ("Float", "-Infinity"),
    ("Float", "nan"), ("Float", "1e999"), ("Float", ".5"), ("Float", "5."), ("Float", "0x10"), ("Float", "+1"),
    ("Float", "1e"), ("Float", "1" * 10_000), ("Float", ""),
    ("Boolean", "True"), ("Boolean", "TRUE"), ("Boolean", "1"), ("Boolean", "yes"), ("Boolean", ""),
])
def test_a_value_looser_than_the_type(kind: str, value: str) -> None:
    assert TYPES[kind](value) is None


def test_a_long_number_costs_no_parse() -> None:
    started = time.perf_counter()
    for _ in range(100):
        TYPES["Integer"]("9" * 100_000)
        TYPES["Float"]("9" * 100_000)
    assert time.perf_counter() - started < 0.5


def test_the_range_still_applies() -> None:
    spec = ParamSpec(name="N", type="Integer", min=1, max=100)
    assert [valid(spec, v) for v in ("0", "1", "100", "101")] == [False, True, True, False]


# -- item 13: a repeated parameter carries at most max_repeated values -----------------------------------

API = ApiSpec(version="v", action="A", params={"Id": ParamSpec(name="Id", repeated=True)}, repeated=frozenset({"Id"}))


def _ctx(params: dict[str, str]) -> Call:
    return a_call(params=params, api=API)


def test_an_index_up_to_max_repeated_is_admitted() -> None:
    Params(max_repeated=3)(_ctx({"Id.1": "a", "Id.2": "b", "Id.3": "c"}))


@pytest.mark.parametrize(("name", "err"), [
    ("Id.4", Err.INVALID_PARAMETER), ("Id.10000000000", Err.UNSUPPORTED_PARAMETER),
    ("Id.0", Err.UNSUPPORTED_PARAMETER), ("Id.01", Err.UNSUPPORTED_PARAMETER), ("Id", Err.UNSUPPORTED_PARAMETER),
])
def test_an_index_past_max_repeated_is_refused(name: str, err: Err) -> None:
    with pytest.raises(GatewayError) as caught:
        Params(max_repeated=3)(_ctx({name: "a"}))
    assert caught.value.err is err


# -- items 6 and 13: RAM on the resolver's canonical resource, each looked up once ----------------------

@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy((DATA / "policy.toml").read_text(), "policy.toml", {})


class Resolver:
    def __init__(self, answer: Resource | None) -> None:
        self.answer, self.asked = answer, []  # type: list[tuple[str, str]]

    async def lookup(self, kind: str, resource_id: str) -> Resource | None:
        self.asked.append((kind, resource_id))
        return self.answer


def _ram(policy: Policy, resolver: Resolver, params: dict[str, str]) -> None:
    # LTAIops: Allow Describe* on *, Deny on instance/i-secret-*
    ctx = a_call(params=params, api=policy.api("2014-05-26", "DescribeInstances"), key=policy.access_keys["LTAIops"])
    pending = Access(resolver)(ctx)  # type: ignore[arg-type]
    if pending is not None:
        asyncio.run(pending)  # type: ignore[arg-type]


def test_the_canonical_id_is_judged(policy: Policy) -> None:
    with pytest.raises(GatewayError) as caught:
        _ram(policy, Resolver(Resource("instance", "i-secret-1", 1111)), {"InstanceId.1": "I-SECRET-1"})
    assert caught.value.err is Err.FORBIDDEN_RAM


def test_the_callers_spelling_is_judged_too(policy: Policy) -> None:
    # A resolver answering another id than asked must not turn a denied spelling into an allowed one.
    with pytest.raises(GatewayError) as caught:
        _ram(policy, Resolver(Resource("instance", "i-web-1", 1111)), {"InstanceId.1": "i-secret-1"})
    assert caught.value.err is Err.FORBIDDEN_RAM


def test_a_resource_of_another_kind_is_not_found(policy: Policy) -> None:
    with pytest.raises(GatewayError) as caught:
        _ram(policy, Resolver(Resource("disk", "i-web-1", 1111)), {"InstanceId.1": "i-web-1"})
    assert caught.value.err is Err.INSTANCE_NOT_FOUND


def test_each_distinct_resource_is_looked_up_once(policy: Policy) -> None:
    resolver = Resolver(Resource("instance", "i-web-1", 1111))
    _ram(policy, resolver, {f"InstanceId.{n}": "i-web-1" for n in range(1, 101)} | {"InstanceId.101": "I-WEB-1"})
    assert resolver.asked == [("instance", "i-web-1"), ("instance", "I-WEB-1")]


# -- item 18: a pattern runs only on a value of bounded length -------------------------------------------

def _api_with(param: str) -> str:
    return f'[apis."v".A]\nparams.Name = {{ {param} }}\n'


@pytest.mark.parametrize("param", ['pattern = "[a-z]+"', 'pattern = "[a-z]+", max_length = 4097'])
def test_a_pattern_needs_a_max_length(param: str) -> None:
    with pytest.raises(PolicyError, match=r"^p\.toml:1: apis\.v\.A\.params\.Name: a pattern needs a max_length"):
        parse_policy(_api_with(param), "p.toml", {})


def test_a_negative_max_length_is_refused() -> None:
    with pytest.raises(PolicyError, match="max_length must not be negative"):
        parse_policy(_api_with("max_length = -1"), "p.toml", {})


def test_a_bounded_pattern_loads_and_the_length_is_checked_first() -> None:
    policy = parse_policy(_api_with('pattern = "([a-z]+)*", max_length = 16'), "p.toml", {})
    spec = policy.apis["v"]["A"].params["Name"]
    started = time.perf_counter()
    assert not valid(spec, "a" * 40 + "!")  # 2^40 steps, were the pattern run
    assert time.perf_counter() - started < 0.1
