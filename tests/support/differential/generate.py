"""Admissible adversarial requests: what an attacker holding one valid key, and knowing how the gateway
parses, would send to make the service read something the gateway did not check.

Each case is drawn as raw pieces (target, query and body bytes, headers, framing); what the gateway
will read is computed with its own parser (`gateway.parsing.parse_into`, the query as httptools splits
the target) and signed as such: V1 with the common parameters and Signature added, V3 with the headers
of `sign_request_v3` over the parsed query, the path uvicorn decodes and the exact body. Whatever the
gateway then refuses is fine; what it admits must read the same everywhere (`compare`).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

import httptools  # type: ignore[import-untyped]
from hypothesis import strategies as st

from gateway.parsing import BadInput, parse_into
from gateway.signing import percent_encode, sign_request_v1, sign_request_v3
from tests.support.fuzzing.wire import RawRequest
from tests.support.keys import SECRETS

VERSION = "2014-05-26"
FORM = b"application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Case:
    request: RawRequest
    version: str  # "V1" or "V3"
    key: str
    shapes: tuple[str, ...]  # what is adversarial about it, for the summary


# --- values and how they are written -----------------------------------------------------------------

SMUGGLING = ["x+ACY-Action+AD0-DeleteInstance", "+ACY-InstanceId.1+AD0-i-secret-1", "a&Action=DeleteInstance",
             "v\x00Note=b", "%26Note%3Db", "a;Note=b", "i-web-1", "I-SECRET-1", "2222", "\ufffd", "caf\u00e9",
             "\u2028", "+", " ", "=", "&", "%", ";", ""]
_alphabet = st.sampled_from(list("aZ09 &=+%;#?/:,*'()!$@~-._\\\"<>é\u00ff\u4e2d\U0001f600\x00\t\n"))
values = st.one_of(st.sampled_from(SMUGGLING), st.text(_alphabet, max_size=12))
_SAFE_LOOSE = "*/:,!$'()@;?"


@st.composite
def written(draw: st.DrawFn, text: str, raw_ok: bool) -> bytes:
    """``text`` as the wire carries it, in a spelling the gateway decodes back to ``text``."""
    how = draw(st.sampled_from(["canonical", "canonical", "plus", "pct20", "lower", "loose"] + ["raw"] * raw_ok))
    encoded = percent_encode(text)
    if how == "plus":
        return encoded.replace("%20", "+").encode()
    if how == "lower":
        return re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), encoded).encode()
    if how == "loose":
        return urllib.parse.quote(text, safe=_SAFE_LOOSE).encode()
    if how == "raw":  # non-ASCII bytes unescaped (the gateway decodes the whole string as UTF-8)
        return urllib.parse.quote(text, safe=_SAFE_LOOSE + "".join(c for c in text if ord(c) > 0x7F)).encode()
    return encoded.encode()


# --- what is asked ------------------------------------------------------------------------------------

#: key -> the APIs it may call and the parameters each takes (name, value strategy).
KEYS = ["LTAIalice", "LTAIalice", "LTAIops", "LTAIops", "LTAIbob"]
INSTANCES = st.sampled_from(["i-web-1", "i-web-1", "i-bob-1", "i-secret-1", "I-WEB-1", "i-web-1 "])


@st.composite
def api_params(draw: st.DrawFn, key: str) -> tuple[str, list[tuple[str, str]], list[str]]:
    action = draw(st.sampled_from(["DescribeEcho", "DescribeEcho", "DescribeInstances", "DescribeRegions"]))
    shapes: list[str] = []
    pairs: list[tuple[str, str]] = []
    if action == "DescribeEcho":
        for name in draw(st.lists(st.sampled_from(["Text", "Note", "PageSize", "RegionId"]), unique=True, max_size=3)):
            pairs.append((name, draw(st.integers(1, 100).map(str)) if name == "PageSize" else draw(values)))
        repeats = draw(st.sampled_from([0, 0, 1, 3, 120]))
        same = draw(st.booleans())
        pairs += [(f"Tag.{i}", "t" if same else draw(values)) for i in range(1, repeats + 1)]
        shapes += ["long-repeat"] * (repeats > 100)
    elif action == "DescribeInstances":
        repeats = draw(st.sampled_from([1, 1, 2, 150]))
        one = draw(INSTANCES)
        pairs += [(f"InstanceId.{i}", one if repeats > 2 else draw(INSTANCES)) for i in range(1, repeats + 1)]
        shapes += ["long-repeat"] * (repeats > 100)
    if draw(st.integers(0, 9)) == 0:  # a name in another case or with an underscore: UnsupportedParameter
        variant = draw(st.sampled_from(["text", "TEXT", "Action_", "action", "Tag_1", "Instance_Id.1"]))
        pairs.append((variant, draw(values)))
        shapes.append("name-variant")
    return action, pairs, shapes


# --- where it goes ------------------------------------------------------------------------------------

PATHS = [b"/", b"/", b"/", b"/svc/a", b"/svc/a%2Fb", b"/svc/%2E%2E/admin", b"/svc/../admin", b"/svc/./a", b"/%FF",
         b"/%fe", b"/a\\b", b"/a;b=c", b"/caf%C3%A9", b"/%20x", b"/%2e"]


def target_forms(gateway: bytes, victim_port: int) -> st.SearchStrategy[tuple[str, bytes]]:
    victim = b"127.0.0.1:%d" % victim_port
    return st.sampled_from([("origin", b"")] * 8 + [
        ("absolute", b"http://" + gateway), ("absolute-other", b"http://evil.example"),
        ("star-at", b"*@" + victim), ("star", b"*"), ("double-slash", b"//" + victim), ("authority", victim),
    ])


IDENTITY_SPOOFS = [b"x-gateway-account-id", b"X-Gateway-Account-Id", b"X_Gateway_Account_Id", b"x_gateway_sub_user",
                   b"X-GATEWAY-SUB-USER", b"x-acs-request-id", b"X_ACS_Request_Id", b"x_gateway_access_key_id",
                   b"x-gateway-account-name", b"X_Gateway_Account_Name", b"x-gateway-foo", b"X_Gateway_Foo"]
IP_SPOOFS = [(b"forwarded", b"for=203.0.113.7"), (b"Forwarded", b'for="[2001:db8::7]";proto=https'),
             (b"x-real-ip", b"203.0.113.7"), (b"X_Real_IP", b"203.0.113.7"), (b"x-forwarded-for", b"203.0.113.7"),
             (b"X_Forwarded_For", b"203.0.113.7")]
CONNECTION_NAMES = [b"keep-alive", b"x-gateway-sub-user", b"x-gateway-account-id", b"x-gateway-access-key-id",
                    b"x-acs-request-id", b"x-forwarded-for", b"host", b"content-type"]
CHARSETS = [b"", b"", b"", b"; charset=utf-8", b"; charset=UTF8", b'; charset="utf-8"', b"; charset=utf-7",
            b"; charset=UTF-7", b"; charset=latin-1", b"; charset=iso-8859-1", b"; charset=utf-16",
            b"; charset=utf-8; charset=utf-7", b"; foo=bar; charset=utf-7", b";charset=utf-16le", b"; charset=nope"]
ENCODINGS = [b"gzip", b"deflate", b"br", b"identity", b"x-custom"]


@st.composite
def cases(draw: st.DrawFn, gateway: bytes, victim_port: int) -> Case:
    """One signed adversarial request to the gateway at ``gateway`` (its Host: ``host:port``)."""
    key = draw(st.sampled_from(KEYS))
    version = draw(st.sampled_from(["V1", "V3"]))
    method = draw(st.sampled_from(["GET", "POST", "POST"]))
    action, pairs, shapes = draw(api_params(key))
    shapes = [version, method, *shapes]

    has_body = method == "POST" or draw(st.integers(0, 5)) == 0
    shapes += ["body-on-get"] * (has_body and method == "GET")
    in_body = [draw(st.booleans()) if has_body else False for _ in pairs]
    if has_body and pairs and draw(st.integers(0, 5)) == 0:  # the same name in query and body
        name, _ = pairs[0]
        pairs.append((name, draw(values)))
        in_body.append(not in_body[0])
        shapes.append("name-twice")
    query_parts = [(n, v) for (n, v), b in zip(pairs, in_body, strict=True) if not b]
    body_parts = [(n, v) for (n, v), b in zip(pairs, in_body, strict=True) if b]

    def wire(parts: list[tuple[str, str]], raw_ok: bool) -> list[bytes]:
        out = []
        for name, value in parts:
            separator = b"" if not value and draw(st.integers(0, 3)) == 0 else b"="
            out.append(draw(written(name, raw_ok)) + separator + (draw(written(value, raw_ok)) if separator else b""))
        return out

    query_items = wire(query_parts, draw(st.integers(0, 9)) == 0)
    body_items = wire(body_parts, True)
    joiner = draw(st.sampled_from([b"&", b"&", b"&", b"&&"]))
    if draw(st.integers(0, 9)) == 0:
        query_items.append(b"")  # a trailing "&"

    form, path_prefix = draw(target_forms(gateway, victim_port))
    shapes.append(f"target-{form}")
    path = draw(st.sampled_from(PATHS))
    shapes += ["odd-path"] * (path not in (b"/", b"/svc/a"))
    base = path_prefix + path if form in ("origin", "absolute", "absolute-other", "star-at", "double-slash") \
        else path_prefix
    headers: list[tuple[bytes, bytes]] = [(b"host", gateway)]

    content_type = b""
    if has_body:
        media = draw(st.sampled_from([FORM] * 6 + [b"APPLICATION/X-WWW-FORM-URLENCODED", b"text/plain"]))
        charset = draw(st.sampled_from(CHARSETS))
        content_type = media + charset
        shapes += [f"charset{charset.decode()}"] * bool(charset)
        if draw(st.integers(0, 9)) > 0:
            headers.append((b"content-type", content_type))
        if draw(st.integers(0, 9)) == 0:
            headers.append((b"Content-Type", draw(st.sampled_from([FORM + b"; charset=utf-7", b"text/plain", FORM]))))
            shapes.append("content-type-twice")
        if draw(st.integers(0, 7)) == 0:
            headers.append((b"content-encoding", draw(st.sampled_from(ENCODINGS))))
            shapes.append("content-encoding")

    def gateway_reads(query: bytes, body: bytes) -> tuple[dict[str, str], dict[str, str]] | None:
        parsed_query: dict[str, str] = {}
        try:
            parse_into(query, parsed_query)
            params = dict(parsed_query)
            folded = b",".join(v for n, v in headers if n.lower() == b"content-type")
            if method == "POST" and body and folded.split(b";", 1)[0].strip().lower() == FORM:
                parse_into(body, params)
        except BadInput:
            return None
        return parsed_query, params

    nonce_free = {"Action", "Version", "AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce",
                  "Timestamp", "Format", "Signature"}
    if version == "V1":
        common = {"Action": action, "Version": VERSION, "Format": draw(st.sampled_from(["JSON", "XML"]))}
        if any(n in nonce_free for n, _ in pairs):
            common = {}
        common_in_body = method == "POST" and has_body and draw(st.booleans())
        query = joiner.join(query_items)
        body = joiner.join(body_items)
        read = gateway_reads(_query_of(base + b"?" + query), body) or ({}, {})
        signed = sign_request_v1({**read[1], **common}, access_key_id=key, secret=SECRETS[key], method=method,
                                 signature_method=draw(st.sampled_from(["HMAC-SHA1", "HMAC-SHA256"])))
        added = [f"{percent_encode(k)}={percent_encode(v)}".encode() for k, v in signed.items() if k not in read[1]]
        if common_in_body:
            body = joiner.join([*body_items, *added])
        else:
            query = joiner.join([*added, *query_items]) if draw(st.booleans()) else joiner.join([*query_items, *added])
        target = base + b"?" + query
    else:
        query = joiner.join(query_items)
        body = joiner.join(body_items)
        target = base + (b"?" + query if query or draw(st.booleans()) else b"")
        read = gateway_reads(_query_of(target), body) or ({}, {})
        v3 = sign_request_v3(method=method, host=gateway.decode(), path=_path_of(target), query=read[0], body=body,
                             action=action, version=VERSION, access_key_id=key, secret=SECRETS[key])
        headers += [(k.encode(), v.encode()) for k, v in v3.items() if k != "host"]
    if form == "authority" or form == "star":
        target = base  # no path at all: the query is lost, as such a target carries none
    headers += draw(header_noise())
    for name, _ in headers:
        if name.lower() in (b"connection", b"forwarded", b"x-real-ip", b"x_real_ip") or b"gateway" in name.lower() \
                or b"request" in name.lower() or b"forwarded" in name.lower():
            shapes.append("header-" + name.decode().lower().replace("_", "-"))
    order = draw(st.permutations(range(len(headers))))
    chunked = bool(body) and draw(st.integers(0, 4)) == 0
    shapes += ["chunked"] * chunked
    request = RawRequest(method.encode(), target, tuple(headers[i] for i in order), body, chunked)
    if body and not chunked and draw(st.integers(0, 14)) == 0:
        request = RawRequest(request.method, request.target, (*request.headers, (b"content-length",
                             str(len(body)).encode())), body)
        shapes.append("content-length-twice")
    return Case(request, version, key, tuple(dict.fromkeys(shapes)))


@st.composite
def header_noise(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for name in draw(st.lists(st.sampled_from(IDENTITY_SPOOFS), unique=True, max_size=3)):
        out.append((name, draw(st.sampled_from([b"2222", b"LTAIbob", b"ops", b"evil", b"2222, 1111"]))))
    out += draw(st.lists(st.sampled_from(IP_SPOOFS), unique=True, max_size=2))
    if draw(st.integers(0, 3)) == 0:
        names = draw(st.lists(st.sampled_from(CONNECTION_NAMES), min_size=1, unique=True, max_size=5))
        out.append((b"Connection", b", ".join(names)))
    return out


def _query_of(target: bytes) -> bytes:
    try:
        return httptools.parse_url(target).query or b""
    except httptools.HttpParserInvalidURLError:
        return b""


def _path_of(target: bytes) -> str:
    """The path the gateway will check (scope["path"]), decoded as uvicorn's httptools protocol does."""
    try:
        raw = httptools.parse_url(target).path or b"/"
        return urllib.parse.unquote(raw.decode("ascii"))
    except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
        return "/"
