"""HTTP fuzzing: raw HTTP/1.1 on a socket, hypothesis strategies, and the oracle that judges answers.

Used by tests/test_fuzz.py (a small sample in CI) and bench/fuzz.py (the full run), and for its raw
client by the abuse, fault and soak runs. Three parts:

* **The wire.** `RawRequest` is written byte for byte by `exchange` on a socket of its own
  (``Connection: close``): httpx would normalise exactly what is being fuzzed (escapes, header case,
  framing). `RawAnswer` is what came back, or None when nothing did.
* **The oracle.** `judge` says what is wrong with an answer: a traceback or a secret in a body, a code
  outside the catalog, `InternalError`, a body that does not parse in the content type it declares, or
  an admission the test did not expect. uvicorn's own ``400 Invalid HTTP request received.`` is not a
  gateway answer (httptools refused the framing, the gateway never saw the request): it is counted
  as ``http-400`` and allowed wherever a refusal is. Nor is the ``431 Request header fields too
  large.`` of `gateway serve`'s protocol (gateway/serving.py): counted as ``http-431``, it is the
  answer to a head over ``GATEWAY_MAX_HEADER_BYTES`` (the only one, but uvicorn's 400) and a
  violation for any other.
* **The inputs.** `raw_requests` draws hostile requests from scratch; `signed_requests` draws correctly
  signed ones (V1 GET/POST, V3 GET/POST), and `mutations` flips one byte of one of them anywhere:
  method, path, query, a header's name or value, body. `expectation` decides, from what each signature
  version covers (CONTRACT §2) rather than from the gateway's code, whether the flipped request must be
  refused (it means something else), must be admitted (it means the same: a hex escape in another
  case, an unsigned header, a header name in another case), or may go either way (framing the HTTP
  server may refuse on its own). Given the server's head bound, `raw_requests` and `signed_requests`
  pad some heads to a few bytes either side of it (`padded`).

Known bugs (see `KNOWN_BUGS`) are recognised by `known_bug` and counted apart, so that the sample in CI
stays green while a strict xfail test pins each of them; drop an entry once its bug is fixed.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, unquote_to_bytes
from xml.etree import ElementTree

from hypothesis import strategies as st

from gateway.errors import Err
from gateway.settings import Settings
from gateway.signing import percent_encode, sign_request_v1, sign_request_v3
from tests.support.keys import SECRETS

VERSION = "2014-05-26"
FORM = b"application/x-www-form-urlencoded"
CONTENT_TYPES = {"text/xml;charset=utf-8": "XML", "application/json;charset=utf-8": "JSON"}
CATALOG = frozenset((entry.value.code, entry.value.status) for entry in Err)
ERROR_FIELDS = ["RequestId", "HostId", "Code", "Message"]
SERVER_REJECTION = b"Invalid HTTP request received."
HEAD_REFUSAL = b"Request header fields too large."  # gateway/serving.py's 431
#: GATEWAY_MAX_HEADER_BYTES unless set: the head bound `judge` assumes when it is given none.
MAX_HEAD = Settings().max_header_bytes
SECRET_VALUES = tuple(sorted(set(SECRETS.values()) | {"alice-old-secret"}))
# Headers that frame the message rather than carry meaning: never mutated (the body would no longer
# match them and the exchange would only wait), always written by `RawRequest.wire`.
FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
TCHAR = frozenset((string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~").encode())


# --- the wire --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawRequest:
    """One HTTP/1.1 request as bytes. ``chunked`` sends the body with Transfer-Encoding: chunked;
    ``length`` overrides the Content-Length value (same number, other spelling: leading zeros)."""

    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    chunked: bool = False
    length: bytes | None = None

    def head(self) -> bytes:
        """The request line and the headers, the blank line included: what GATEWAY_MAX_HEADER_BYTES bounds."""
        lines = [self.method + b" " + self.target + b" HTTP/1.1"]
        lines += [name + b": " + value for name, value in self.headers]
        if self.chunked:
            lines.append(b"transfer-encoding: chunked")
        elif self.body or self.length is not None or self.method == b"POST":
            lines.append(b"content-length: " + (self.length or str(len(self.body)).encode()))
        lines.append(b"connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def wire(self) -> bytes:
        head = self.head()
        if not self.chunked:
            return head + self.body
        chunks = [self.body[i:i + 65_536] for i in range(0, len(self.body), 65_536)]
        return head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n.lower() == name), None)

    def short(self, limit: int = 300) -> str:
        shown = repr(self.wire()[:limit])
        return shown + (f"... ({len(self.wire())} bytes)" if len(self.wire()) > limit else "")


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes
    seconds: float
    truncated: bool = False  # fewer body bytes than Content-Length: the connection was cut

    def json(self) -> Any:
        return json.loads(self.body)


def parse_answer(raw: bytes, *, head: bool = False, seconds: float = 0.0) -> RawAnswer | None:
    """The first answer in ``raw`` (None if its head is incomplete); the body as Content-Length says."""
    top, separator, rest = raw.partition(b"\r\n\r\n")
    if not separator:
        return None
    status_line, *lines = top.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return RawAnswer(int(parts[1]), headers, b"" if head else rest[:length], seconds,
                     truncated=not head and len(rest) < length)


def exchange(address: tuple[str, int], request: RawRequest | bytes, *, timeout: float = 10.0) -> RawAnswer | None:
    """Send ``request`` on a new connection and read until the server closes it; None: no answer."""
    data = request.wire() if isinstance(request, RawRequest) else request
    head = isinstance(request, RawRequest) and request.method == b"HEAD"
    began = time.monotonic()
    chunks: list[bytes] = []
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            with contextlib.suppress(OSError):  # the server may answer and close before reading it all
                sock.sendall(data)
            while chunk := sock.recv(262_144):
                chunks.append(chunk)
    except OSError:
        pass  # reset after a partial answer: judge what arrived
    return parse_answer(b"".join(chunks), head=head, seconds=time.monotonic() - began)


def address_of(url: str) -> tuple[str, int]:
    host, _, port = url.split("://", 1)[1].rstrip("/").partition(":")
    return host, int(port)


# --- the oracle ------------------------------------------------------------------------------------

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
    lowered = answer.body.lower()
    if b"traceback" in lowered:
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


# --- inputs from scratch ---------------------------------------------------------------------------

COMMON = ["Action", "Version", "AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion",
          "SignatureNonce", "Timestamp", "Format", "OwnerId", "OwnerAccount", "ClientToken", "RegionId",
          "Text", "Tag.1", "InstanceId.1", "PageSize", "AcceptLanguage"]
PLAUSIBLE = ["DescribeRegions", "DescribeEcho", "CreateOrder", VERSION, "LTAIalice", "LTAIbob", "LTAIdisabled",
             "HMAC-SHA1", "HMAC-SHA256", "1.0", "JSON", "XML", "json", "None", "1111", "alice@example.com",
             "2014-05-26T00:00:00Z", "", "=", "&"]
_BAD_ESCAPES = [b"%", b"%z", b"%zz", b"%f", b"%ff", b"%fe%ff", b"%c3", b"%c3%28", b"%00", b"%ed%a0%80", b"%e2%82"]


def timestamp(offset: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def padded(request: RawRequest, size: int) -> RawRequest:
    """``request`` with an ``x-pad`` header (signed by no version) making its head ``size`` bytes long;
    unchanged when the head is longer already."""
    room = size - len(request.head()) - len(b"x-pad: \r\n")
    return request if room < 0 else replace(request, headers=(*request.headers, (b"x-pad", b"p" * room)))


#: Where a padded head ends, from the bound: a few bytes either side of it (the bound itself is within), or
#: up to a KiB.
_around_the_bound = st.one_of(st.integers(-2, 2), st.integers(-1024, 1024))


names = st.one_of(st.sampled_from(COMMON), st.text(max_size=12))
values = st.one_of(st.sampled_from(PLAUSIBLE), st.just("__now__"), st.text(max_size=40))


@st.composite
def encoded(draw: st.DrawFn, text: str, raw_allowed: bool = False) -> bytes:
    """``text`` on the wire: canonically, with ``+``, unescaped where HTTP allows it, with a broken
    escape spliced in, or (rarely: httptools refuses it) as raw UTF-8."""
    how = draw(st.sampled_from(["canonical"] * 3 + ["plus", "loose", "broken"] + ["raw"] * raw_allowed))
    if how == "canonical":
        return percent_encode(text).encode()
    if how == "plus":
        return percent_encode(text).replace("%20", "+").encode()
    if how == "loose":  # what some SDKs send: *, /, : and friends unescaped
        return re.sub("%(2A|2F|3A|40|2C|21|24|27|28|29)", lambda m: unquote(m[0]), percent_encode(text)).encode()
    raw = text.encode()
    if how == "raw":
        return raw
    at = draw(st.integers(0, len(raw)))
    return percent_encode(text[:at]).encode() + draw(st.sampled_from(_BAD_ESCAPES)) + percent_encode(text[at:]).encode()


@st.composite
def pairs(draw: st.DrawFn, max_pairs: int = 12) -> bytes:
    """A query string or form body: names repeated or nameless, values empty, escapes broken, or bulk."""
    shape = draw(st.sampled_from(["pairs"] * 8 + ["many", "big"]))
    if shape == "many":  # up to 10,000 parameters (a query past 64 KiB is httptools' to refuse)
        count, repeated = draw(st.integers(100, 10_000)), draw(st.booleans())
        return b"&".join(b"Tag.%d=v" % (1 if repeated else i % 9999 + 1) for i in range(count))
    if shape == "big":  # one value up to 1 MiB
        size = draw(st.integers(1_000, 1_048_576))
        return b"Format=JSON&Action=DescribeEcho&Text=" + draw(st.sampled_from([b"a", b"%41", b"+", b"%"])) * size
    items = []
    raw_allowed = draw(st.integers(0, 9)) == 0  # raw bytes in a query: mostly httptools' to refuse
    for _ in range(draw(st.integers(0, max_pairs))):
        value = draw(values)
        value = timestamp() if value == "__now__" else value
        name = draw(encoded(draw(names), raw_allowed))
        separator = draw(st.sampled_from([b"=", b"=", b"=", b"", b"=="]))
        items.append(name + separator + draw(encoded(value, raw_allowed)))
    joiner = draw(st.sampled_from([b"&", b"&", b"&&", b";"]))
    return joiner.join(items)


METHODS = [b"GET"] * 4 + [b"POST"] * 4 + [b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD", b"TRACE", b"PROPFIND",
                              b"get", b"Post"]
PATHS = [b"/"] * 6 + [b"/x", b"//", b"/%2e%2e/", b"/a%zz", b"/%00", b"/_gatewayx", b"/_gateway", b"*", b"/?",
                      b"/\xc3\xa9", b"/a b"]
AUTHORIZATIONS = [
    b"ACS3-HMAC-SHA256", b"ACS3-HMAC-SHA256 ", b"ACS3-HMAC-SHA256 Credential=",
    b"ACS3-HMAC-SHA256 Credential=LTAIalice",
    b"ACS3-HMAC-SHA256 Credential=LTAIalice,SignedHeaders=host,Signature=00",
    b"ACS3-HMAC-SHA256 Credential=LTAIalice,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;"
    b"x-acs-signature-nonce;x-acs-version,Signature=" + b"0" * 64,
    b"ACS3-HMAC-SHA256 Credential=LTAIalice,Credential=LTAIbob,SignedHeaders=host,Signature=00",
    b"ACS3-HMAC-SHA1 Credential=LTAIalice,SignedHeaders=host,Signature=00", b"ACS3-\xff\xfe", b"Basic YWxpY2U6c2VjcmV0",
    b"Bearer " + b"x" * 5000,
]
X_ACS = [b"x-acs-action", b"x-acs-version", b"x-acs-date", b"x-acs-signature-nonce", b"x-acs-content-sha256",
         b"x-acs-foo", b"x-gateway-account-id", b"x-acs-request-id"]
CONTENT_TYPES_SENT = [FORM, FORM + b"; charset=utf-8", b"APPLICATION/X-WWW-FORM-URLENCODED", b"application/json",
                      b"text/plain", b"multipart/form-data; boundary=x", b"", b"application/x-www-form-urlencodedx"]
_known_names = st.sampled_from([b"authorization", b"content-type", b"host", b"accept", *X_ACS])
header_names = st.one_of(_known_names, _known_names,
                         st.text(st.sampled_from(sorted(map(chr, TCHAR))), min_size=1, max_size=12).map(str.encode))
any_header_names = st.binary(min_size=1, max_size=12).filter(
    lambda n: n.lower() not in FRAMING and not set(n) & set(b":\r\n"))
_latin1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60)
_sampled_values = st.sampled_from(AUTHORIZATIONS + CONTENT_TYPES_SENT + [b"xml", b"application/xml", VERSION.encode()])
header_values = st.one_of(
    _sampled_values, _sampled_values, _sampled_values,
    _latin1.map(lambda v: v.encode("latin-1")), _latin1.map(lambda v: v.encode("latin-1")),
    st.integers(10_000, 1_048_576).map(lambda n: b"y" * n),  # huge x-acs-* and friends
)
any_header_values = st.binary(max_size=60).map(lambda v: v.replace(b"\r", b"").replace(b"\n", b""))


@st.composite
def raw_requests(draw: st.DrawFn, max_head: int | None = None) -> RawRequest:
    """A hostile request from scratch: any method, path, query, headers, body and framing; given the
    server's head bound, one in ten padded to a head around it."""
    method = draw(st.sampled_from(METHODS))
    path = draw(st.sampled_from(PATHS))
    query = draw(pairs())
    target = path + (b"?" + query if query or draw(st.booleans()) else b"")
    headers = [(b"host", draw(st.sampled_from([b"gateway.test", b"127.0.0.1:1", b"", b"a<b>&c\xe9", b"[::1]:80"])))]
    for _ in range(draw(st.integers(0, 4))):
        headers.append((draw(header_names), draw(header_values)))
    if draw(st.integers(0, 9)) == 0:  # bytes HTTP forbids in a header line: mostly httptools' to refuse
        headers.append((draw(st.one_of(header_names, any_header_names)), draw(any_header_values)))
    body = b""
    if draw(st.booleans()):
        body = draw(st.one_of(pairs(), st.binary(max_size=200),
                              st.integers(1_048_000, 1_049_000).map(lambda n: b"Text=" + b"b" * n)))
        headers.append((b"content-type", draw(st.sampled_from(CONTENT_TYPES_SENT))))
    chunked = bool(body) and draw(st.integers(0, 4)) == 0
    length = None
    if not chunked and draw(st.integers(0, 19)) == 0:  # Content-Length with leading zeros
        length = b"0" * draw(st.sampled_from([1, 10, 4000, 4290, 4300, 6000])) + str(len(body)).encode()
    request = RawRequest(method, target, tuple(headers), body, chunked, length)
    if max_head is not None and draw(st.integers(0, 9)) == 0:
        request = padded(request, max_head + draw(_around_the_bound))
    return request


# --- signed requests and their mutations -----------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    """A correctly signed request, and what the service must see once the gateway admits it."""

    version: str  # "V1" or "V3"
    request: RawRequest
    params: dict[str, str]  # decoded, Signature excluded
    key: str = "LTAIalice"


texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)


@st.composite
def signed_requests(draw: st.DrawFn, host: bytes, versions: tuple[str, ...] = ("V1", "V3"),
                    max_head: int | None = None) -> Signed:
    """DescribeRegions or DescribeEcho (free text, repeated tags), V1 GET/POST or V3 GET/POST, signed
    now by LTAIalice with a fresh nonce, with unsigned headers a client may add (including a spoofed
    identity header, which the gateway must drop); given the server's head bound, one in ten padded
    to a head around it."""
    version = draw(st.sampled_from(versions))
    method = draw(st.sampled_from(["GET", "POST"]))
    action = draw(st.sampled_from(["DescribeRegions", "DescribeEcho"]))
    params: dict[str, str] = {}
    if action == "DescribeEcho":
        params["Text"] = draw(texts)
        for i in range(draw(st.integers(0, 3))):
            params[f"Tag.{i + 1}"] = draw(texts)
    headers: list[tuple[bytes, bytes]] = [(b"host", host)]
    extra = [(b"user-agent", b"fuzz/1.0"), (b"x-gateway-account-id", b"2222"), (b"accept", b"*/*")]
    headers += draw(st.lists(st.sampled_from(extra), unique=True, max_size=3))
    fmt = draw(st.sampled_from(["JSON", "XML"]))
    if version == "V1":
        signed = sign_request_v1({"Action": action, "Version": VERSION, "Format": fmt, **params},
                                 access_key_id="LTAIalice", secret=SECRETS["LTAIalice"], method=method,
                                 signature_method=draw(st.sampled_from(["HMAC-SHA1", "HMAC-SHA256"])))
        encoded_pairs = [f"{percent_encode(k)}={percent_encode(v)}".encode() for k, v in signed.items()]
        if draw(st.booleans()):  # as sdk-core sends them: the API named in headers too, equal
            headers += [(b"x-acs-action", action.encode()), (b"x-acs-version", VERSION.encode())]
        in_body = draw(st.integers(0, len(encoded_pairs))) if method == "POST" else 0
        query, body = encoded_pairs[in_body:], encoded_pairs[:in_body]
        target = b"/?" + b"&".join(query) if query else b"/"
        seen = {k: v for k, v in signed.items() if k != "Signature"}
    else:
        body = [f"{percent_encode(k)}={percent_encode(v)}".encode() for k, v in params.items()] \
            if method == "POST" and draw(st.booleans()) else []
        query_params = {} if body else {"Format": fmt, **params} if draw(st.booleans()) else dict(params)
        path = draw(st.sampled_from(["/", "/v3/path"]))
        signed_headers = sign_request_v3(method=method, host=host.decode(), path=path, query=query_params,
                                         body=b"&".join(body), action=action, version=VERSION,
                                         access_key_id="LTAIalice", secret=SECRETS["LTAIalice"])
        headers += [(k.encode(), v.encode()) for k, v in signed_headers.items() if k != "host"]
        query = [f"{percent_encode(k)}={percent_encode(v)}".encode() for k, v in query_params.items()]
        target = path.encode() + (b"?" + b"&".join(query) if query else b"")
        seen = {**query_params, **params}
    if body:
        headers.append((b"content-type", draw(st.sampled_from([FORM, FORM + b"; charset=UTF-8"]))))
    order = draw(st.permutations(range(len(headers))))
    request = RawRequest(method.encode(), target, tuple(headers[i] for i in order), b"&".join(body),
                         chunked=bool(body) and draw(st.booleans()))
    if max_head is not None and draw(st.integers(0, 9)) == 0:
        request = padded(request, max_head + draw(_around_the_bound))
    return Signed(version, request, seen)


ACTIONS = ["DescribeRegions", "DescribeEcho", "DescribeInstances", "DescribeDisks", "DescribeSecurityGroups",
           "DescribeSnapshots", "DescribeImages", "DeleteInstance", "DescribeOwnedThings", "DescribeClosedToRam",
           "DescribeFlowLimited", "CreateOrder", "CreateVerifiedThing", "DescribeNothing"]
DECLARED = ["InstanceId.1", "InstanceId.2", "InstanceId", "PageSize", "Status", "Name", "DryRun", "DiskId",
            "SecurityGroupId", "SnapshotId", "ImageId", "Amount", "Text", "Note", "Tag.1", "Tag.9999", "Tag.0",
            "AcceptLanguage", "OwnerId", "OwnerAccount", "ClientToken", "RegionId", "SignatureType", "Format"]
RESOURCES = ["i-web-1", "i-secret-1", "i-bob-1", "i-nope", "d-1", "sg-1", "s-1", "m-1", "m-gone", "1111", "2222",
             "alice@example.com", "10", "0", "-1", "1000", "true", "Running", "en-US", "web-1", "x" * 17]
_semantic_values = st.one_of(st.sampled_from(RESOURCES), st.sampled_from(RESOURCES), texts,
                             st.integers(-(2**70), 2**70).map(str),
                             st.integers(1_000, 1_000_000).map(lambda n: "v" * n))


@st.composite
def signed_semantics(draw: st.DrawFn, host: bytes) -> Signed:
    """Correctly signed requests that ask for anything: every key of the test policy (unknown,
    disabled, sub-user, quota), any API, declared and undeclared parameters with valid and invalid
    values, owners, ClientTokens, skewed clocks, reused nonces, up to 10,000 parameters in a body.
    Never the echo service's Crash (its InternalError is the contract) nor CreateSlowOrder (it waits)."""
    key = draw(st.sampled_from(sorted(SECRETS)))
    action = draw(st.sampled_from(ACTIONS)) if draw(st.integers(0, 9)) else draw(st.text(max_size=20))
    version = draw(st.sampled_from([VERSION] * 8 + ["2016-01-01", "1999-01-01", ""]))
    params: dict[str, str] = {}
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(DECLARED)) if draw(st.integers(0, 5)) else draw(st.text(max_size=10))
        params[name] = draw(_semantic_values)
    if draw(st.integers(0, 19)) == 0:
        params.update({f"Tag.{i}": "t" for i in range(1, draw(st.integers(2, 9_999)) + 1)})
    params = {k: v for k, v in params.items() if k and k not in ("Action", "Version", "Signature")}
    method = "POST" if len(params) > 1000 else draw(st.sampled_from(["GET", "POST"]))
    nonce = draw(st.sampled_from([None] * 6 + ["fixed-nonce-1", "fixed-nonce-2", "text"]))
    nonce = draw(st.text(min_size=1, max_size=140)) if nonce == "text" else nonce
    offset = draw(st.sampled_from([0, 0, 0, -3700, 3700, -30]))
    fmt = draw(st.sampled_from(["JSON", "XML", "json", None]))
    base = {"Action": action, "Version": version, **params, **({"Format": fmt} if fmt else {})}
    headers: list[tuple[bytes, bytes]] = [(b"host", host)]
    body: bytes = b""
    if draw(st.booleans()):
        signed = sign_request_v1(base, access_key_id=key, secret=SECRETS[key], method=method,
                                 nonce=nonce, timestamp=timestamp(offset))
        pairs_ = [f"{percent_encode(k)}={percent_encode(v)}".encode() for k, v in signed.items()]
        if method == "POST" and draw(st.booleans()):
            body, target = b"&".join(pairs_), b"/"
        else:
            target = b"/?" + b"&".join(pairs_)
        seen = {k: v for k, v in signed.items() if k != "Signature"}
        version_label = "V1"
    else:
        query = {k: v for k, v in base.items() if k not in ("Action", "Version")}
        encoded_query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in query.items())
        if method == "POST" and draw(st.booleans()):
            body, query = encoded_query.encode(), {}
        v3 = sign_request_v3(method=method, host=host.decode(), query=query, body=body, action=action,
                             version=version, access_key_id=key, secret=SECRETS[key], nonce=nonce,
                             date=timestamp(offset))
        headers += [(k.encode(), v.encode("utf-8")) for k, v in v3.items() if k != "host"]
        target = b"/?" + encoded_query.encode() if query else b"/"
        seen = {k: v for k, v in base.items() if k not in ("Action", "Version")}
        version_label = "V3"
    if body:
        headers.append((b"content-type", FORM))
    return Signed(version_label, RawRequest(method.encode(), target, tuple(headers), body), seen, key)


def decode_pairs(raw: bytes) -> dict[str, str] | None:
    """CONTRACT §2 / README "Request rules", written independently: None where it says refuse."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        return None
    out: dict[str, str] = {}
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        try:
            name, value = (unquote_to_bytes(s.replace("+", " ")).decode("utf-8") for s in (name, value))
        except UnicodeDecodeError:
            return None
        if not name or name in out:
            return None
        out[name] = value
    return out


def _header_map(request: RawRequest) -> dict[bytes, bytes] | None:
    """Folded, lower-cased headers as HTTP reads the lines; None when httptools would refuse one."""
    folded: dict[bytes, bytes] = {}
    for line_name, line_value in request.headers:
        name, _, value = (line_name + b": " + line_value).partition(b":")  # a name may have gained a ':'
        if not name or any(b not in TCHAR for b in name):
            return None
        if any((b < 0x20 and b != 0x09) or b == 0x7F for b in value):
            return None
        key, value = name.lower(), value.strip(b" \t")
        folded[key] = folded[key] + b"," + value if key in folded else value
    return folded


def _auth_meaning(value: bytes) -> tuple[bytes, ...]:
    """Authorization, with the two parts the contract leaves case-free (header names, hex) lowered."""
    found = re.fullmatch(rb"(.*SignedHeaders=)([^,]*)(,Signature=)(.*)", value, re.DOTALL)
    if found is None:
        return (value,)
    return found[1], found[2].lower(), found[3], found[4].lower()


def meaning(signed: Signed, request: RawRequest) -> tuple[Any, ...] | None:
    """What the signature of ``signed`` covers, read off ``request``; None if it cannot be admitted."""
    if request.method != signed.request.method:
        return None
    target = request.target
    if any(b <= 0x20 or b >= 0x7F for b in target):
        return None  # not a request-target httptools takes
    path, _, query_string = target.split(b"#", 1)[0].partition(b"?")
    query = decode_pairs(query_string)
    headers = _header_map(request)
    if query is None or headers is None:
        return None
    params = dict(query)
    if request.body and request.method == b"POST":
        if headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower() != FORM:
            return None
        form = decode_pairs(request.body)
        if form is None or form.keys() & params.keys():
            return None
        params.update(form)
    if signed.version == "V1":
        if headers.get(b"authorization", b"").startswith(b"ACS3-"):
            return None
        for name, header in (("Action", b"x-acs-action"), ("Version", b"x-acs-version")):
            if header in headers and headers[header].decode("latin-1") != params.get(name):
                return None
        return ("V1", frozenset(params.items()))
    auth = headers.get(b"authorization")
    if auth is None:
        return None
    found = re.search(rb"SignedHeaders=([^,]*)", auth)
    signed_names = found[1].lower().split(b";") if found else []
    if any(name not in headers for name in signed_names):
        return None
    return ("V3", unquote(path.decode()), frozenset(params.items()), _auth_meaning(auth),
            tuple(headers[name] for name in signed_names), request.body)


def _v1_path_is_plain(request: RawRequest) -> bool:
    path = request.target.split(b"?", 1)[0]
    return path.startswith(b"/") and all(b in b"/-._~" or chr(b).isalnum() for b in path)


def expectation(signed: Signed, mutated: RawRequest) -> str:
    """ADMIT: means what was signed; REFUSE: means something else, or cannot be read; ANY: means the
    same but its framing is the HTTP server's call (a V1 path, which the signature does not cover)."""
    if mutated == signed.request:
        return ADMIT
    before, after = meaning(signed, signed.request), meaning(signed, mutated)
    if after is None or after != before:
        return REFUSE
    if signed.version == "V1" and not _v1_path_is_plain(mutated):
        return ANY
    return ADMIT


@dataclass(frozen=True)
class Mutation:
    signed: Signed
    request: RawRequest
    where: str  # "method", "target", "header-name", "header-value" or "body"
    expect: str


@st.composite
def mutations(draw: st.DrawFn, host: bytes, versions: tuple[str, ...] = ("V1", "V3"),
              max_head: int | None = None) -> Mutation:
    """One byte of a signed request replaced (a bit flipped, the case of a letter, another visible
    character, or any other byte), anywhere but in the framing headers."""
    signed = draw(signed_requests(host, versions, max_head))
    request = signed.request
    # The query and the body carry most of what is signed: they weigh more than one header.
    regions: list[tuple[str, int]] = [("method", 0)] + [("target", 0)] * 6
    regions += [(part, i) for i, (name, _) in enumerate(request.headers) if name.lower() not in FRAMING
                for part in ("header-name", "header-value")]
    if request.body:
        regions += [("body", 0)] * 4
    where, index = draw(st.sampled_from(regions))
    name, value = request.headers[index] if where.startswith("header") else (b"", b"")
    region = {"method": request.method, "target": request.target, "header-name": name,
              "header-value": value, "body": request.body}[where]
    if not region:
        return Mutation(signed, request, where, ADMIT)
    # The request holds a fresh timestamp and nonce, so its lengths vary from run to run: every draw
    # below is made unconditionally and fitted to the region afterwards, which keeps hypothesis's
    # generation deterministic for a given choice sequence.
    at = draw(st.integers(0, 1 << 20)) % len(region)
    how = draw(st.sampled_from(["bit", "case", "visible", "visible", "any"]))
    bit, delta, visible = draw(st.integers(0, 7)), draw(st.integers(1, 255)), draw(st.integers(0x21, 0x7E))
    old = region[at]
    if how == "bit":
        new = old ^ (1 << bit)
    elif how == "case" and chr(old).isalpha():
        new = ord(chr(old).swapcase())
    elif how == "visible" and visible != old:  # what survives HTTP framing, to reach the gateway
        new = visible
    else:
        new = (old + delta) % 256
    changed = region[:at] + bytes([new]) + region[at + 1:]
    if where == "method":
        mutated = replace(request, method=changed)
    elif where == "target":
        mutated = replace(request, target=changed)
    elif where == "body":
        mutated = replace(request, body=changed)
    else:
        headers = list(request.headers)
        headers[index] = (changed, value) if where == "header-name" else (name, changed)
        mutated = replace(request, headers=tuple(headers))
    return Mutation(signed, mutated, where, expectation(signed, mutated))


def check_echo(signed: Signed) -> Callable[[dict[str, Any]], list[str]]:
    """For an admitted JSON answer of the echo service: it saw exactly what was signed, and the
    caller the signature proves (never the spoofed identity header)."""

    def check(data: dict[str, Any]) -> list[str]:
        echo = data.get("Echo")
        if not isinstance(echo, dict):
            return []  # XML, or not the echo service
        wrong = []
        seen, meant = echo["Params"], signed.params
        if "ClientToken" in meant:  # an idempotent retry gets the first call's answer, nonce and all
            seen, meant = ({k: v for k, v in d.items() if k not in ("SignatureNonce", "Timestamp")}
                           for d in (seen, meant))
        if seen != meant:
            wrong.append(f"the service saw {seen}, not the signed {signed.params}")
        caller = echo.get("Caller") or {}
        if caller.get("AccessKeyId") != signed.key:
            wrong.append(f"caller {caller}")
        if echo["Headers"].get("x-gateway-account-id") != str(caller.get("AccountId")):
            wrong.append(f"identity headers {echo['Headers']}")
        return wrong

    return check
