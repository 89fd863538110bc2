"""Admissible adversarial requests: what an attacker holding one valid key, and knowing how the gateway
parses, would send to make the service read something the gateway did not check.

Each case is a plain signed call (any key, sub-users included; V1 or V3, anonymous, temporary
credentials, SM3 or RSA: `credentials`; GET or POST; parameters in the query or the body) carrying at
most two adversarial *features* from `FEATURES`. Drawing every dimension oddly at once made nearly every
case one the gateway refuses, which proves only that refusals happen; a case is now most often "a valid
request plus one or two odd-but-legal features", the shape that has to read the same everywhere. `ODD`
features are legal (the gateway should admit them and forward exactly what it checked); `HOSTILE` ones
are refused today, and stay in the catalogue to prove the refusal comes before anything is forwarded.

What the gateway will read is computed with its own parser (`gateway.parsing.parse_into`, the query as
httptools splits the target) and signed as such: V1 with the common parameters and Signature added, V3
with the headers of `sign_request_v3` over the parsed query, the path uvicorn decodes and the exact
body. Whatever the gateway then refuses is fine; what it admits must read the same everywhere
(`compare`).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

import httptools  # type: ignore[import-untyped]
from hypothesis import strategies as st

from gateway.parsing import BadInput, parse_into
from gateway.signing import ALGORITHM_RSA, percent_encode, sign_request_v1, sign_request_v3
from tests.support.differential.credentials import (
    FOREIGN_TOKEN,
    VERSIONS,
    Signer,
    sign_rsa_v3,
    signers,
    v1_common,
    v3_extra_headers,
)
from tests.support.differential.policy import RSA_KEY_ID
from tests.support.fuzzing.wire import RawRequest

VERSION = "2014-05-26"
FORM = b"application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Case:
    request: RawRequest
    version: str  # credentials.VERSIONS: "V1", "V3", "anon", "V1-sts", "V3-sts", "V3-sm3", "V3-rsa"
    key: str
    shapes: tuple[str, ...]  # what is adversarial about it, for the summary
    signer: Signer | None = None  # who signed it, and the identity the gateway must establish if it admits it


# --- the catalogue ------------------------------------------------------------------------------------

#: Legal features: the gateway should admit a case carrying them and forward exactly what it checked.
ODD = (
    "spoof-identity",         # x-gateway-* / x-acs-request-id in any spelling (dropped by the gateway)
    "spoof-client-ip",        # Forwarded, X-Real-IP, X-Forwarded-For in any spelling (rewritten)
    "spoof-api-header",       # X_Acs_Action / X_Acs_Version: folds onto the header V3 dispatches on
    "connection-owned",       # Connection naming the gateway's own headers
    "connection-end-to-end",  # Connection naming headers the gateway read: content-type, authorization...
    "escapes",                # "+", "%20", lower-case and loose escapes
    "repeat",                 # Tag.1..N / InstanceId.1..N within GATEWAY_MAX_REPEATED
    "charset-utf8",           # charset=utf-8 in its accepted spellings
    "empty",                  # empty values, names without "="
    "joiners",                # "&&", leading and trailing "&"
    "chunked",                # Transfer-Encoding: chunked body
    "odd-path",               # legal paths that decode: /a%3Bb, /%41, /caf%C3%A9, /a;b=c
    "common-in-body",         # V1 common parameters in the form body
    "header-bytes",           # raw non-UTF-8 bytes and fold-like text in header values
    "content-type-twice-empty",  # two Content-Type headers on a POST without a body
    "multipart-encoded",      # a multipart-looking value (CR/LF, Content-Disposition), escaped
    "content-encoding-identity",  # Content-Encoding: identity
    "token-elsewhere",        # a SecurityToken where the version does not read it (V1: header, V3: parameter):
                              # admitted when it is the verified one, refused otherwise
)
#: Features the gateway refuses today; the refusal must come before anything is forwarded.
HOSTILE = (
    "target-form",            # absolute, "*", "*@victim/x", "//victim/x", authority-form
    "bad-path",               # %2F, %2E%2E, dot segments, %FF, backslash
    "charset-other",          # utf-7, UTF8, latin-1, utf-16, several parameters
    "content-encoding",       # gzip, deflate...
    "body-on-get",            # a form body on a GET (V1 and V3)
    "name-variant",           # text, Action_, Tag_1: UnsupportedParameter
    "name-twice",             # the same name in the query and the body
    "long-repeat",            # Name.1..N beyond GATEWAY_MAX_REPEATED
    "raw-bytes",              # unescaped non-ASCII (non-UTF-8 too), ";" or "#"
    "content-type-twice",     # two Content-Type headers on a form body
    "not-form",               # text/plain, multipart/form-data, JSON, no Content-Type
    "multipart-raw",          # a real multipart body, raw CR/LF
    "content-length-twice",   # the same Content-Length twice
    "foreign-resource",       # another account's instance, a denied one, another spelling
    "semicolon",              # ";" between pairs
    "obs-fold",               # an obs-fold continuation line (the HTTP server refuses it)
)
FEATURES = ODD + HOSTILE
#: Features that need a form body (so a POST with one).
_NEEDS_BODY = {"charset-utf8", "chunked", "common-in-body", "multipart-encoded", "charset-other", "content-encoding",
               "name-twice", "content-type-twice", "not-form", "multipart-raw", "content-length-twice",
               "content-encoding-identity"}


_OVERRIDES = (("bad-path", "odd-path"), ("target-form", "odd-path"), ("charset-other", "charset-utf8"),
              ("not-form", "charset-utf8"), ("multipart-raw", "charset-utf8"), ("semicolon", "joiners"),
              ("not-form", "multipart-raw"), ("body-on-get", "content-type-twice-empty"),
              ("content-encoding", "content-encoding-identity"))


@st.composite
def features(draw: st.DrawFn) -> frozenset[str]:
    """0, 1 or 2 features: a third of the cases are plain, the rest odd in one or two ways."""
    count = draw(st.sampled_from([0, 1, 1, 2, 2]))
    return frozenset(draw(st.lists(st.sampled_from(FEATURES), min_size=count, max_size=count, unique=True)))


# --- values and how they are written -----------------------------------------------------------------

SMUGGLING = ["x+ACY-Action+AD0-DeleteInstance", "+ACY-InstanceId.1+AD0-i-secret-1", "a&Action=DeleteInstance",
             "v\x00Note=b", "%26Note%3Db", "a;Note=b", "i-web-1", "I-SECRET-1", "2222", "\ufffd", "caf\u00e9",
             "\u2028", "+", " ", "=", "&", "%", ";", "#", "a\r\nAction: DeleteInstance"]
_alphabet = st.sampled_from(list("aZ09 &=+%;#?/:,*'()!$@~-._\\\"<>é\u00ff\u4e2d\U0001f600\x00\t\n\r"))
values = st.one_of(st.sampled_from(SMUGGLING), st.text(_alphabet, min_size=1, max_size=12))
MULTIPART = ['\r\n--b\r\nContent-Disposition: form-data; name="Action"\r\n\r\nDeleteInstance\r\n--b--\r\n',
             '--x\r\nContent-Disposition: form-data; name="InstanceId.1"\r\n\r\ni-secret-1\r\n--x--',
             "a\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n--b"]
_SAFE_LOOSE = "*/:,!$'()@?"


@st.composite
def written(draw: st.DrawFn, text: str, odd: bool, raw: bool) -> bytes:
    """``text`` as the wire carries it: canonically, or (``odd``) in another spelling the gateway decodes
    back to ``text``; ``raw`` may leave non-ASCII and ";" unescaped (which the gateway refuses)."""
    hows = ["canonical"]
    if odd:
        hows += ["plus", "pct20", "lower", "loose"]
    if raw:
        hows = ["raw"]
    how = draw(st.sampled_from(hows))
    encoded = percent_encode(text)
    if how == "plus":
        return encoded.replace("%20", "+").encode()
    if how == "pct20":
        return encoded.encode()
    if how == "lower":
        return re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), encoded).encode()
    if how == "loose":
        return urllib.parse.quote(text, safe=_SAFE_LOOSE).encode()
    if how == "raw":  # non-ASCII and ";" unescaped (the gateway refuses both)
        kept = _SAFE_LOOSE + ";" + "".join(c for c in text if ord(c) > 0x7F)
        return urllib.parse.quote(text, safe=kept).encode()
    return encoded.encode()


# --- what is asked ------------------------------------------------------------------------------------

KEYS = ["LTAIalice", "LTAIalice", "LTAIops", "LTAIops", "LTAIbob"]
#: The instances each key may name (its account's, and not denied to the sub-user).
OWN_INSTANCES = {"LTAIalice": "i-web-1", "LTAIops": "i-web-1", "LTAIbob": "i-bob-1", RSA_KEY_ID: "i-web-1"}
FOREIGN_INSTANCES = ["i-bob-1", "i-secret-1", "I-WEB-1", "i-web-1 ", "i-nope-1"]


@st.composite
def api_params(draw: st.DrawFn, key: str, odd: frozenset[str]) -> tuple[str, list[tuple[str, str]]]:
    actions = ["DescribeEcho", "DescribeEcho", "DescribeInstances", "DescribeRegions"]
    if odd & {"repeat", "long-repeat", "foreign-resource"}:
        actions = ["DescribeInstances"] if "foreign-resource" in odd else ["DescribeEcho", "DescribeInstances"]
    if odd & {"multipart-encoded", "empty"}:
        actions = ["DescribeEcho"]
    action = draw(st.sampled_from(actions))
    pairs: list[tuple[str, str]] = []
    repeats = draw(st.integers(2, 100)) if "repeat" in odd else draw(st.integers(101, 150)) \
        if "long-repeat" in odd else draw(st.sampled_from([0, 1, 1, 2]))
    if action == "DescribeEcho":
        names = draw(st.lists(st.sampled_from(["Text", "Note", "PageSize", "RegionId"]), unique=True,
                              min_size=1 if odd & {"multipart-encoded", "empty"} else 0, max_size=3))
        for name in names:
            pairs.append((name, draw(st.integers(1, 100).map(str)) if name == "PageSize" else draw(values)))
        if "multipart-encoded" in odd:
            pairs.append(("Text" if "Text" not in names else "Note", draw(st.sampled_from(MULTIPART))))
        same = draw(st.booleans())
        pairs += [(f"Tag.{i}", "t" if same else draw(values)) for i in range(1, repeats + 1)]
    elif action == "DescribeInstances":
        own = OWN_INSTANCES[key]
        ids = [own] * max(repeats, 1)
        if "foreign-resource" in odd:
            ids[draw(st.integers(0, len(ids) - 1))] = draw(st.sampled_from(FOREIGN_INSTANCES))
        pairs += [(f"InstanceId.{i}", one) for i, one in enumerate(ids, 1)]
    if "empty" in odd:
        pairs.append(("Note" if all(n != "Note" for n, _ in pairs) else "Text", ""))
    if "name-variant" in odd:
        variant = draw(st.sampled_from(["text", "TEXT", "Action_", "action", "Tag_1", "Instance_Id.1", "Tag.0"]))
        pairs.append((variant, draw(values)))
    # A name's value for the same name is unique: the pairs are a mapping the gateway reads once.
    return action, list(dict(pairs).items())


# --- where it goes ------------------------------------------------------------------------------------

ODD_PATHS = [b"/svc/a", b"/a%3Bb", b"/%41", b"/caf%C3%A9", b"/a;b=c", b"/%20x", b"/a/b/", b"/~u", b"/a%25b",
             b"/.well-known", b"/a%2Eb", b"/%E4%B8%AD", b"/a:b@c"]
BAD_PATHS = [b"/svc/a%2Fb", b"/svc/%2E%2E/admin", b"/svc/../admin", b"/svc/./a", b"/%FF", b"/%fe", b"/a\\b",
             b"/a%5Cb", b"/%2e", b"/a/..;x/b", b"//x", b"/a%00b"]


def target_forms(gateway: bytes, victim_port: int) -> st.SearchStrategy[tuple[str, bytes]]:
    victim = b"127.0.0.1:%d" % victim_port
    return st.sampled_from([
        ("absolute", b"http://" + gateway), ("absolute-other", b"http://evil.example"),
        ("star-at", b"*@" + victim), ("star", b"*"), ("double-slash", b"//" + victim), ("authority", victim),
    ])


IDENTITY_SPOOFS = [b"x-gateway-account-id", b"X-Gateway-Account-Id", b"X_Gateway_Account_Id", b"x_gateway_sub_user",
                   b"X-GATEWAY-SUB-USER", b"x-acs-request-id", b"X_ACS_Request_Id", b"x_gateway_access_key_id",
                   b"x-gateway-account-name", b"X_Gateway_Account_Name", b"x-gateway-foo", b"X_Gateway_Foo",
                   b"X.Gateway.Account.Id", b"X-Gateway-Account-ID",
                   # The role headers of temporary credentials (#17), on every kind of call.
                   b"X_Gateway_Role_Arn", b"x-gateway-role-arn", b"X-Gateway-Role-Session-Name",
                   b"x_gateway_role_session_name", b"X_GATEWAY_ASSUMED_BY", b"x-gateway-assumed-by",
                   b"X-Gateway-Anonymous"]
IP_SPOOFS = [(b"forwarded", b"for=203.0.113.7"), (b"Forwarded", b'for="[2001:db8::7]";proto=https'),
             (b"x-real-ip", b"203.0.113.7"), (b"X_Real_IP", b"203.0.113.7"), (b"x-forwarded-for", b"203.0.113.7"),
             (b"X_Forwarded_For", b"203.0.113.7"), (b"X-Forwarded-For", b"127.0.0.1, 203.0.113.7")]
API_SPOOFS = [(b"X_Acs_Action", b"DeleteInstance"), (b"x_acs_version", b"2016-01-01"),
              (b"X-ACS-ACTION_", b"DeleteInstance")]
CONNECTION_OWNED = [b"x-gateway-sub-user", b"x-gateway-account-id", b"x-gateway-access-key-id", b"x-acs-request-id",
                    b"x-forwarded-for", b"forwarded", b"x-real-ip", b"X_Gateway_Sub_User", b"x-gateway-role-arn",
                    b"X_Gateway_Role_Session_Name", b"x-gateway-assumed-by"]
CONNECTION_END_TO_END = [b"content-type", b"content-length", b"authorization", b"host", b"x-acs-action",
                         b"x-acs-version", b"x-acs-date", b"x-acs-signature-nonce", b"x-acs-content-sha256",
                         b"Content-Type", b"transfer-encoding", b"accept", b"x-acs-security-token",
                         b"x-acs-content-sm3"]
UTF8_CHARSETS = [b"; charset=utf-8", b'; charset="utf-8"', b";charset=UTF-8", b"; CHARSET=Utf-8", b"; charset=utf-8 "]
OTHER_CHARSETS = [b"; charset=UTF8", b"; charset=utf-7", b"; charset=UTF-7", b"; charset=latin-1",
                  b"; charset=iso-8859-1", b"; charset=utf-16", b"; charset=utf-8; charset=utf-7",
                  b"; foo=bar; charset=utf-7", b";charset=utf-16le", b"; charset=nope", b"; charset = utf-8",
                  b"; charset=utf-8, text/plain"]
NOT_FORM = [b"text/plain", b"multipart/form-data; boundary=b", b"application/json", b"", b"application/x-www-form"]
FORM_SPELLINGS = [FORM, FORM, b"APPLICATION/X-WWW-FORM-URLENCODED", b"Application/x-www-form-urlencoded"]
ENCODINGS = [b"gzip", b"deflate", b"br", b"x-custom", b"identity, gzip"]
HEADER_BYTES = [(b"X-Note", b"caf\xe9 \xff\xfe"), (b"User-Agent", b"\xc3\x28\xa0\xa1"), (b"X-Note", b"a\tb  "),
                (b"X-Note", b"x-gateway-account-id: 2222"), (b"Accept-Language", b"\x80\x81"), (b"X-Empty", b"")]
OBS_FOLDS = [(b"X-Note", b"a\r\n b"), (b"X-Note", b"a\r\n\tx-gateway-account-id: 2222"),
             (b"User-Agent", b"sdk\r\n X_Gateway_Sub_User: admin")]


@st.composite
def cases(draw: st.DrawFn, gateway: bytes, victim_port: int) -> Case:
    """One signed request to the gateway at ``gateway`` (its Host: ``host:port``) with 0-2 features."""
    odd = draw(features())
    # Where a hostile feature and an odd one set the same thing, the hostile one wins.
    odd -= {f for hostile, f in _OVERRIDES if hostile in odd}
    # "anon": no credentials at all, to the anonymous twin of DescribeEcho (#17 §3); the #17 kinds of
    # credentials (temporary ones, SM3, RSA) as `credentials` describes.
    version = draw(st.sampled_from(VERSIONS))
    key = RSA_KEY_ID if version == "V3-rsa" else draw(st.sampled_from(KEYS))
    signer = draw(signers(version, key))
    needs_body = bool(odd & _NEEDS_BODY)
    method = "GET" if "body-on-get" in odd else "POST" if needs_body or "content-type-twice-empty" in odd \
        else draw(st.sampled_from(["GET", "POST"]))
    action, pairs = draw(api_params(key, odd))
    if version == "anon" and action == "DescribeEcho":
        action = "DescribePublicEcho"
    # The token in the place the other version reads it: the one verified (temporary credentials), or a
    # valid token of another account's session that nothing verified.
    elsewhere = draw(st.sampled_from([t for t in (signer.token, FOREIGN_TOKEN) if t])) \
        if "token-elsewhere" in odd else None
    if elsewhere is not None and signer.v3:
        pairs.append(("SecurityToken", elsewhere))
    shapes = [version, method, f"key-{key}", *signer.shapes, *sorted(odd)]

    body_allowed = (method == "POST" and "content-type-twice-empty" not in odd) or "body-on-get" in odd
    in_body = [body_allowed and draw(st.booleans()) for _ in pairs]
    if body_allowed and needs_body | ("body-on-get" in odd) and not any(in_body):
        # A feature about the body needs one: at least one parameter goes there.
        pairs.append(("Note" if all(n != "Note" for n, _ in pairs) else "RegionId", "n"))
        if action not in ("DescribeEcho", "DescribePublicEcho"):
            pairs[-1] = ("RegionId", "cn-hangzhou")
        in_body.append(True)
    if "name-twice" in odd:
        name, _ = pairs[0] if pairs else ("RegionId", "x")
        if not pairs:
            pairs.append((name, "cn"))
            in_body.append(True)
        pairs.append((name, draw(values)))
        in_body.append(not in_body[0])
    query_parts = [(n, v) for (n, v), b in zip(pairs, in_body, strict=True) if not b]
    body_parts = [(n, v) for (n, v), b in zip(pairs, in_body, strict=True) if b]

    raw_where = draw(st.sampled_from(["query", "body"])) if "raw-bytes" in odd else ""

    def wire(parts: list[tuple[str, str]], raw: bool) -> list[bytes]:
        out = []
        for name, value in parts:
            separator = b"" if not value and "empty" in odd and draw(st.booleans()) else b"="
            value_bytes = draw(written(value, "escapes" in odd, raw)) if separator else b""
            out.append(draw(written(name, "escapes" in odd, False)) + separator + value_bytes)
        return out

    query_items = wire(query_parts, raw_where == "query")
    body_items = wire(body_parts, raw_where == "body")
    if raw_where:  # a raw byte the gateway refuses, whatever the values were
        raw = draw(st.sampled_from([b"Note=caf\xc3\xa9", b"Note=\xff", b"Note=a;Action=DeleteInstance", b"Note=a#b"]))
        (query_items if raw_where == "query" else body_items).append(raw)
    joiner = b"&"
    if "joiners" in odd:
        joiner = draw(st.sampled_from([b"&", b"&&"]))
        query_items = [b"", *query_items] if draw(st.booleans()) else [*query_items, b""]
    if "semicolon" in odd:
        joiner = b";"

    form, path_prefix = draw(target_forms(gateway, victim_port)) if "target-form" in odd else ("origin", b"")
    path = b"/"
    if "odd-path" in odd:
        path = draw(st.sampled_from(ODD_PATHS))
    elif "bad-path" in odd:
        path = draw(st.sampled_from(BAD_PATHS))
    if form != "origin":
        shapes.append(f"target-{form}")
    base = path_prefix + path if form in ("origin", "absolute", "absolute-other", "star-at", "double-slash") \
        else path_prefix
    headers: list[tuple[bytes, bytes]] = [(b"host", gateway)]

    has_body = bool(body_items) or "multipart-raw" in odd
    if has_body or needs_body:
        media = draw(st.sampled_from(FORM_SPELLINGS))
        charset = b""
        if "charset-utf8" in odd:
            charset = draw(st.sampled_from(UTF8_CHARSETS))
        elif "charset-other" in odd:
            charset = draw(st.sampled_from(OTHER_CHARSETS))
        content_type = media + charset
        if "not-form" in odd:
            content_type = draw(st.sampled_from(NOT_FORM))
        if "multipart-raw" in odd:
            content_type = draw(st.sampled_from([FORM, b"multipart/form-data; boundary=b"]))
        if content_type:
            headers.append((b"content-type", content_type))
        if "content-type-twice" in odd:
            headers.append((b"Content-Type", draw(st.sampled_from([FORM + b"; charset=utf-7", b"text/plain", FORM]))))
    if "content-type-twice-empty" in odd:
        headers += [(b"content-type", FORM),
                    (b"Content-Type", draw(st.sampled_from([FORM + b"; charset=utf-7", b"text/plain", FORM])))]
    if "content-encoding" in odd:
        headers.append((b"content-encoding", draw(st.sampled_from(ENCODINGS))))
    if "content-encoding-identity" in odd:
        headers.append((b"Content-Encoding", draw(st.sampled_from([b"identity", b"IDENTITY", b" identity"]))))

    def gateway_reads(query: bytes, body: bytes) -> tuple[dict[str, str], dict[str, str]] | None:
        parsed_query: dict[str, str] = {}
        try:
            parse_into(query, parsed_query)
            params = dict(parsed_query)
            if method == "POST" and body:
                parse_into(body, params)
        except BadInput:
            return None
        return parsed_query, params

    nonce_free = {"Action", "Version", "AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce",
                  "Timestamp", "Format", "Signature"}
    if not signer.v3:
        common = {"Action": action, "Version": VERSION, "Format": draw(st.sampled_from(["JSON", "XML"])),
                  **v1_common(signer)}
        if any(n in nonce_free for n, _ in pairs):
            common = {}
        common_in_body = method == "POST" and "common-in-body" in odd
        query = joiner.join(query_items)
        body = joiner.join(body_items)
        read = gateway_reads(_query_of(base + b"?" + query), body) or ({}, {})
        signed = {**read[1], **common} if signer.access_key_id is None else sign_request_v1(
            {**read[1], **common}, access_key_id=signer.access_key_id, secret=signer.secret, method=method,
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
        assert signer.access_key_id is not None
        request_parts = {"method": method, "host": gateway.decode(), "path": _path_of(target), "query": read[0],
                         "body": body, "action": action, "version": VERSION, "access_key_id": signer.access_key_id}
        v3 = sign_rsa_v3(**request_parts) if signer.algorithm == ALGORITHM_RSA else sign_request_v3(
            **request_parts, secret=signer.secret, algorithm=signer.algorithm, hash_header=signer.hash_header,
            extra_headers=v3_extra_headers(signer))
        headers += [(k.encode(), v.encode()) for k, v in v3.items() if k != "host"]
    if "multipart-raw" in odd:
        body = b"--b\r\nContent-Disposition: form-data; name=\"Action\"\r\n\r\nDeleteInstance\r\n--b--\r\n" + body
    if form in ("authority", "star"):
        target = base  # no path at all: the query is lost, as such a target carries none
    if elsewhere is not None and not signer.v3:
        headers.append((b"x-acs-security-token", elsewhere.encode()))
    headers += draw(header_noise(odd))
    order = draw(st.permutations(range(len(headers))))
    chunked = bool(body) and "chunked" in odd
    request = RawRequest(method.encode(), target, tuple(headers[i] for i in order), body, chunked)
    if "content-length-twice" in odd and body and not chunked:
        request = RawRequest(request.method, request.target, (*request.headers, (b"content-length",
                             str(len(body)).encode())), body)
    return Case(request, version, key, tuple(dict.fromkeys(shapes)), signer)


@st.composite
def header_noise(draw: st.DrawFn, odd: frozenset[str]) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    if "spoof-identity" in odd:
        for name in draw(st.lists(st.sampled_from(IDENTITY_SPOOFS), unique=True, min_size=1, max_size=3)):
            out.append((name, draw(st.sampled_from([b"2222", b"LTAIbob", b"ops", b"evil", b"2222, 1111", b"",
                                                                b"acs:ram::2222:role/bob-reader", b"true"]))))
    if "spoof-client-ip" in odd:
        out += draw(st.lists(st.sampled_from(IP_SPOOFS), unique=True, min_size=1, max_size=2))
    if "spoof-api-header" in odd:
        out += draw(st.lists(st.sampled_from(API_SPOOFS), unique=True, min_size=1, max_size=2))
    connection: list[bytes] = []
    if "connection-owned" in odd:
        connection += draw(st.lists(st.sampled_from(CONNECTION_OWNED), min_size=1, unique=True, max_size=4))
    if "connection-end-to-end" in odd:
        connection += draw(st.lists(st.sampled_from(CONNECTION_END_TO_END), min_size=1, unique=True, max_size=3))
    if connection:
        out.append((b"Connection", b", ".join([b"keep-alive", *connection])))
    if "header-bytes" in odd:
        out += draw(st.lists(st.sampled_from(HEADER_BYTES), unique=True, min_size=1, max_size=2))
    if "obs-fold" in odd:
        out.append(draw(st.sampled_from(OBS_FOLDS)))
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
