"""Hostile requests from scratch (hypothesis strategies), and heads padded around the server's bound.

`raw_requests` draws any method, path, query, headers, body and framing: bad escapes, invalid UTF-8,
NUL, up to 10,000 parameters and 1 MiB values, repeated names, garbage Authorization, huge x-acs-*
headers, odd Content-Length spellings. Given the server's head bound, one in ten is `padded` to a head
a few bytes (or up to a KiB) either side of it.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from hypothesis import strategies as st

from gateway.signing import percent_encode
from tests.support.fuzzing.wire import FORM, FRAMING, TCHAR, RawRequest

VERSION = "2014-05-26"
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


#: Where a padded head ends, from the bound: a few bytes either side of it (the bound itself is
#: within), or up to a KiB.
around_the_bound = st.one_of(st.integers(-2, 2), st.integers(-1024, 1024))

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
        request = padded(request, max_head + draw(around_the_bound))
    return request
