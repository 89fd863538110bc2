"""Correctly signed requests (hypothesis strategies), and the same with one byte changed.

`signed_requests` draws V1 GET/POST and V3 GET/POST calls that must be admitted; `mutations` flips one
byte of one of them anywhere (method, path, query, a header's name or value, body) and says, through
`expectation`, what the gateway must do with it; `signed_semantics` draws signed calls asking for
anything the test policy knows of.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import strategies as st

from gateway.signing import percent_encode, sign_request_v1, sign_request_v3
from tests.support.fuzzing.meaning import Signed, expectation
from tests.support.fuzzing.oracle import ADMIT
from tests.support.fuzzing.strategies import VERSION, around_the_bound, padded, timestamp
from tests.support.fuzzing.wire import FORM, FRAMING, RawRequest
from tests.support.keys import SECRETS

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
        request = padded(request, max_head + draw(around_the_bound))
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
