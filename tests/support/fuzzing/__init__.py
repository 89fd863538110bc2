"""HTTP fuzzing: raw HTTP/1.1 on a socket, hypothesis strategies, and the oracle that judges answers.

Used by tests/test_fuzz.py (a small sample in CI) and tests/test_fuzz_campaign.py (the full run,
`campaign`), and for its raw client by the abuse, fault, secret and serving tests. The parts, each a module:

* `wire`: `RawRequest` written byte for byte on a socket of its own by `exchange`, `RawAnswer` read
  back (httpx would normalise exactly what is being fuzzed).
* `oracle`: `judge`, what is wrong with an answer (uvicorn's 400 and the 431 of `gateway serve`'s
  head bound told apart from the gateway's answers), and the known bugs counted apart.
* `meaning`: what a signed request means under CONTRACT §2, read independently of the gateway's code:
  `expectation` (must a changed request be admitted, refused, or either?) and `check_echo`.
* `strategies`: hostile requests from scratch (`raw_requests`), heads `padded` around the bound.
* `signed`: correctly signed requests (`signed_requests`, `signed_semantics`) and one-byte
  `mutations` of them.

The names below are re-exported so that ``from tests.support.fuzzing import ...`` works as it did
when this was one module; new code imports from the part it uses.
"""

from tests.support.fuzzing.meaning import Signed, check_echo, expectation
from tests.support.fuzzing.oracle import ADMIT, ANY, MAX_HEAD, REFUSE, Verdict, judge
from tests.support.fuzzing.signed import Mutation, mutations, signed_requests, signed_semantics
from tests.support.fuzzing.strategies import padded, raw_requests
from tests.support.fuzzing.wire import RawAnswer, RawRequest, address_of, exchange, parse_answer

__all__ = [
    "ADMIT",
    "ANY",
    "MAX_HEAD",
    "REFUSE",
    "Mutation",
    "RawAnswer",
    "RawRequest",
    "Signed",
    "Verdict",
    "address_of",
    "check_echo",
    "exchange",
    "expectation",
    "judge",
    "mutations",
    "padded",
    "parse_answer",
    "raw_requests",
    "signed_requests",
    "signed_semantics",
]
