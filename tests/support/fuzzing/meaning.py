"""What a signed request means, read off the wire as CONTRACT §2 says, not as the gateway's code does.

`expectation` decides whether a changed signed request must be refused (it means something else),
must be admitted (it means the same: a hex escape in another case, an unsigned header, a header name
in another case), or may go either way (framing the HTTP server may refuse on its own); `check_echo`
checks that the echo service saw what was signed, from the caller the signature proves.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from tests.support.fuzzing.oracle import ADMIT, ANY, REFUSE
from tests.support.fuzzing.wire import FORM, TCHAR, RawRequest


@dataclass(frozen=True)
class Signed:
    """A correctly signed request, and what the service must see once the gateway admits it."""

    version: str  # "V1" or "V3"
    request: RawRequest
    params: dict[str, str]  # decoded, Signature excluded
    key: str = "LTAIalice"


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


# The headers the gateway reads to check a request; a name that only folds into one of them (any byte but
# a letter or digit read as "-", case ignored: ``X_Acs_Action``, ``x.acs-action``) is refused.
_CHECKED = (b"host", b"authorization", b"content-type", b"content-length", b"content-encoding",
            b"transfer-encoding", b"accept", b"connection")


def _spells_a_checked_header(name: bytes) -> bool:
    folded = re.sub(rb"[^a-z0-9]", b"-", name).strip(b"-")
    return folded != name and (folded in _CHECKED or folded.startswith(b"x-acs-"))


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
        if _spells_a_checked_header(key):
            return None  # a WSGI service would read it as the checked header: refused (README, "Request rules")
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
