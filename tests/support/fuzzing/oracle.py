"""The oracle: `judge` says what is wrong with an answer, whatever the request was.

A traceback or a secret in a body, a code outside the catalog, `InternalError`, a body that does not
parse in the content type it declares, or an admission the test did not expect (``expect``: ADMIT,
REFUSE or ANY, which tests/support/fuzzing/meaning.py decides for a changed signed request).

Two answers come from the HTTP server, not the gateway. uvicorn's own ``400 Invalid HTTP request
received.`` (httptools refused the framing, the gateway never saw the request) is counted as
``http-400`` and allowed wherever a refusal is. The plain-text ``431 Request header fields too
large.`` of `gateway serve`'s protocol (gateway/serving/) is counted as ``http-431``: it is the
answer to a head over ``GATEWAY_MAX_HEADER_BYTES`` (the only one, but uvicorn's 400) and a violation
for any other.

Known bugs (see `KNOWN_BUGS`) are recognised by `known_bug` and counted apart, so that the sample in CI
stays green while a strict xfail test pins each of them; drop an entry once its bug is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes
from xml.etree import ElementTree

from gateway.errors import Err
from gateway.settings import Settings
from tests.support.fuzzing.wire import RawAnswer, RawRequest
from tests.support.keys import SECRETS

CONTENT_TYPES = {"text/xml;charset=utf-8": "XML", "application/json;charset=utf-8": "JSON"}
CATALOG = frozenset((entry.value.code, entry.value.status) for entry in Err)
ERROR_FIELDS = ["RequestId", "HostId", "Code", "Message"]
SERVER_REJECTION = b"Invalid HTTP request received."
TRACEBACK = b"traceback (most recent call last)"  # lower-cased, as bodies are searched
HEAD_REFUSAL = b"Request header fields too large."  # gateway/serving/'s 431
#: GATEWAY_MAX_HEADER_BYTES unless set: the head bound `judge` assumes when it is given none.
MAX_HEAD = Settings().max_header_bytes
SECRET_VALUES = tuple(sorted(set(SECRETS.values()) | {"alice-old-secret"}))

ADMIT, REFUSE, ANY = "admit", "refuse", "any"

#: name -> (what it is, the violations it explains); `known_bug` names the one a request triggers.
#: Empty while no bug is open (the last, Content-Length digits and non-XML-name keys, are fixed and
#: their tests in tests/test_fuzz.py stay as regressions).
KNOWN_BUGS: dict[str, tuple[str, frozenset[str]]] = {}


def known_bug(request: RawRequest) -> str | None:
    del request  # recognise a request that triggers a KNOWN_BUGS entry here, while one is open
    return None


@dataclass
class Verdict:
    outcome: str  # "200", an error code, "http-400" / "http-431" (refused by the server) or "no-answer"
    violations: list[str] = field(default_factory=list)
    known: str | None = None


def _error_fields(answer: RawAnswer, fmt: str) -> dict[str, str | None] | str:
    try:
        if fmt == "XML":
            if not answer.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?><Error>'):
                return "XML error body without the declaration and <Error> root"
            root = ElementTree.fromstring(answer.body)
            if [child.tag for child in root] != ERROR_FIELDS:
                return f"XML error children {[c.tag for c in root]}"
            return {child.tag: child.text for child in root}
        data = answer.json()
    except (ValueError, ElementTree.ParseError) as exc:
        return f"{fmt} error body does not parse: {exc}"
    if not isinstance(data, dict) or list(data) != ERROR_FIELDS:
        return f"JSON error fields {list(data) if isinstance(data, dict) else type(data).__name__}"
    return data


def _success(answer: RawAnswer, fmt: str) -> dict[str, Any] | str:
    try:
        if fmt == "XML":
            root = ElementTree.fromstring(answer.body)
            if not root.tag.endswith("Response") or root.find("RequestId") is None or root.find("Code") is not None:
                return f"XML success root {root.tag} without RequestId or with a Code"
            return {}
        data = answer.json()
    except (ValueError, ElementTree.ParseError) as exc:
        return f"{fmt} success body does not parse: {exc}"
    if not isinstance(data, dict) or "RequestId" not in data or "Code" in data:
        return "JSON success body without RequestId, or with a Code"
    return data


def _from_server(request: RawRequest, answer: RawAnswer, status: int, text: bytes) -> bool:
    """Whether ``answer`` is the HTTP server's own plain-text refusal (no body to compare after HEAD)."""
    if answer.status != status:
        return False
    if request.method == b"HEAD":
        return answer.headers.get("content-type", "").startswith("text/plain")
    return answer.body == text


def _traceback_shown(request: RawRequest, answer: RawAnswer) -> bool:
    """Python's traceback header in the body, not written there by the caller.

    The echo service answers with the request's own parameters, and hypothesis draws text from the
    string constants of loaded modules (this package's "traceback" among them): one run of 100,000
    inputs had an echoed "traceback" flagged. A traceback the gateway leaked starts with the header;
    a caller who sent that header (percent-encoded or not) gets it back in the echo, not from a crash.
    """
    if TRACEBACK not in answer.body.lower():
        return False
    sent = unquote_to_bytes((request.head() + request.body).replace(b"+", b" ")).lower()
    return answer.status >= 400 or TRACEBACK not in sent


def judge(request: RawRequest, answer: RawAnswer | None, expect: str = REFUSE,
          check_success: Callable[[dict[str, Any]], list[str]] | None = None, *,
          max_head: int = MAX_HEAD) -> Verdict:
    """What is wrong with ``answer`` to ``request``, sent to a server that bounds heads to ``max_head``
    bytes: an empty ``violations`` list when nothing is."""
    known = known_bug(request)
    if answer is None:
        return Verdict("no-answer", ["no answer"], known)
    if answer.truncated:
        # uvicorn closed the connection with request bytes unread (it answered before reading them
        # all): the kernel then resets it, dropping what it had not sent yet. Only a large answer
        # (a huge Host reflected as HostId) is long enough to be cut; nothing to judge.
        return Verdict("truncated", [], known)
    if _from_server(request, answer, 400, SERVER_REJECTION):
        wrong = ["admission expected, uvicorn refused the framing"] if expect == ADMIT else []
        return Verdict("http-400", wrong, known)
    head = len(request.head())
    if _from_server(request, answer, 431, HEAD_REFUSAL):
        wrong = [] if head > max_head else [f"431 for a head within the bound: {head} <= {max_head} bytes"]
        return Verdict("http-431", wrong, known)
    if head > max_head:  # the server reads no more than the bound: the application never sees it
        return Verdict(str(answer.status), [f"a head over the bound not refused with 431: {answer.status} "
                                            f"({head} > {max_head} bytes)"], known)
    verdict = Verdict(str(answer.status), [], known)
    wrong = verdict.violations
    if _traceback_shown(request, answer):
        wrong.append("a traceback in the body")
    wrong += [f"secret {s!r} in the body" for s in SECRET_VALUES if s.encode() in answer.body]
    fmt = CONTENT_TYPES.get(answer.headers.get("content-type", ""))
    if fmt is None:
        wrong.append(f"content type {answer.headers.get('content-type')!r} ({answer.status} {answer.body[:80]!r})")
        return _settle(verdict)
    if "x-acs-request-id" not in answer.headers:
        wrong.append("no x-acs-request-id header")
    if request.method == b"HEAD":  # no body to read: the status and content type are all there is
        return _settle(verdict)
    if 200 <= answer.status < 300:
        data = _success(answer, fmt)
        if isinstance(data, str):
            wrong.append(data)
        elif check_success is not None:
            wrong += check_success(data)
        if expect == REFUSE:
            wrong.append(f"admitted ({answer.status})")
        return _settle(verdict)
    fields = _error_fields(answer, fmt)
    if isinstance(fields, str):
        wrong.append(fields)
        return _settle(verdict)
    code = str(fields["Code"])
    verdict.outcome = code
    if (code, answer.status) not in CATALOG:
        wrong.append(f"({code}, {answer.status}) is not in the catalog")
    if code == "InternalError":
        wrong.append("InternalError")
    if fields["RequestId"] != answer.headers.get("x-acs-request-id"):
        wrong.append("RequestId differs from x-acs-request-id")
    if expect == ADMIT:
        wrong.append(f"refused with {code}, admission expected")
    return _settle(verdict)


def _settle(verdict: Verdict) -> Verdict:
    if verdict.known is not None:  # what the known bug explains is its xfail test's business
        explained = KNOWN_BUGS[verdict.known][1]
        verdict.violations = [v for v in verdict.violations if v not in explained]
    return verdict
