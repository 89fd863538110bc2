"""Error and success bodies in XML and JSON (CONTRACT §3).

Exact bytes matter: the SDKs compare the content type as a string (``text/xml;charset=utf-8``, no
space) and read fields by name, so bodies are compact and fields come in the documented order.

A service's JSON is read by `parse_json` so that rendering it changes nothing it says: a number a
Python float or int would alter (``1e999``, more digits than a double holds, an integer past the
4,300-digit conversion limit) stays its decimal text (`Number`); ``NaN`` and ``±Infinity``, which
Python's json writes by default but no JSON parser reads, become ``null`` in JSON and keep their token
as XML text; a lone surrogate (``"\\ud800"``) goes out as that escape in JSON and as U+FFFD in XML,
which cannot carry it at all.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

import xmltodict

from gateway.errors import NotJson

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
CONTENT_TYPES = {"XML": "text/xml;charset=utf-8", "JSON": "application/json;charset=utf-8"}

# XML 1.0 cannot carry these characters at all, even escaped; a value that holds one (a NUL in an
# echoed parameter, say) would make the whole answer unparseable, so they are dropped.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class Number:
    """A JSON number kept as the service wrote it, where a Python number would not say the same.

    ``json`` is what a JSON answer carries: the text itself, or ``null`` for NaN and ±Infinity.
    """

    def __init__(self, text: str, json_text: str | None = None) -> None:
        self.text = text
        self.json = text if json_text is None else json_text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Number({self.text!r})"




def _float(text: str) -> float | Number:
    value = float(text)
    # A float that prints back as the same text says the same thing; anything else (1e999 is inf,
    # 0.1000000000000000055511 loses digits, 1.50 and 1E5 change spelling) keeps the service's text.
    return value if repr(value) == text else Number(text)


def _int(text: str) -> int | Number:
    try:
        return int(text)
    except ValueError:  # longer than int's string-conversion limit (4,300 digits)
        return Number(text)


def _constant(token: str) -> Number:
    # JSON has no NaN or Infinity: a JSON caller gets null, as JavaScript's JSON.stringify writes.
    return Number(token, "null")


# Built once: json.loads and json.dumps given any option build a new decoder or encoder on every call.
_DECODE = json.JSONDecoder(parse_float=_float, parse_constant=_constant).decode
_DECODE_LONG_INTS = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant).decode
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_STRICT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def parse_json(raw: bytes) -> Any:
    """The service's JSON document, numbers kept as `_float`, `_int` and `_constant` say; raises `NotJson`."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")  # what json.loads does with bytes
        return _DECODE(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotJson(str(exc)) from None
    except RecursionError:
        raise NotJson("nested deeper than the JSON parser goes") from None
    except ValueError:
        pass  # an integer past the conversion limit: parse again, with the hook that keeps its text
    try:
        return _DECODE_LONG_INTS(text)
    except (ValueError, RecursionError) as exc:
        raise NotJson(str(exc)) from None


def _surrogate_escapes(exc: UnicodeError) -> tuple[str, int]:
    # Only string literals can hold a lone surrogate: its JSON escape is valid there, and says the same.
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return "".join(f"\\u{ord(c):04x}" for c in exc.object[exc.start:exc.end]), exc.end


def _replacement_characters(exc: UnicodeError) -> tuple[bytes, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    # As bytes: the UTF-8 encoder takes only ASCII replacement text.
    return "\ufffd".encode() * (exc.end - exc.start), exc.end


#: UTF-8 encoding error handlers for lone surrogates, the only characters UTF-8 cannot encode.
JSON_ERRORS, XML_ERRORS = "gateway-json-surrogates", "gateway-xml-surrogates"
codecs.register_error(JSON_ERRORS, _surrogate_escapes)
codecs.register_error(XML_ERRORS, _replacement_characters)


def _compact(value: Any) -> str:
    return _COMPACT(value)


def json_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON that every strict parser reads."""
    try:
        text = _STRICT(value)
    except (TypeError, ValueError):  # a Number inside (or a float that is not finite): the slow way
        text = _encode(value)
    return text.encode("utf-8", JSON_ERRORS)


def _encode(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{_compact(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join([_encode(v) for v in value]) + "]"
    if isinstance(value, Number):
        return value.json
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    return _compact(value)


def as_text(value: Any) -> str:
    """A service's Code or Message as text: a string as it is, anything else as its JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, Number):
        return value.text
    return _encode(value)


def _xml_text(value: str) -> str:
    return escape(_XML_ILLEGAL.sub("", value))


@lru_cache(maxsize=4096)
def _error_parts(fmt: str, host_id: str, code: str, message: str) -> tuple[bytes, bytes]:
    # Everything but the RequestId is the same for every refusal of one kind: build it once.
    if fmt == "XML":
        head = f"{XML_DECLARATION}<Error><RequestId>"
        tail = (
            f"</RequestId><HostId>{_xml_text(host_id)}</HostId><Code>{_xml_text(code)}</Code>"
            f"<Message>{_xml_text(message)}</Message></Error>"
        )
    else:
        head = '{"RequestId":"'
        tail = f'","HostId":{_compact(host_id)},"Code":{_compact(code)},"Message":{_compact(message)}}}'
    return head.encode(), tail.encode("utf-8", XML_ERRORS if fmt == "XML" else JSON_ERRORS)


def error_body(fmt: str, request_id: str, host_id: str, code: str, message: str) -> bytes:
    """The error body; ``request_id`` is ours (a UUID), so it needs no escaping."""
    head, tail = _error_parts(fmt, host_id, code, message)
    return head + request_id.encode() + tail


def _itemize(value: Any) -> Any:
    """Give JSON lists the Aliyun XML shape: the repeated item element inside its container.

    Aliyun's own JSON already says ``{"Regions": {"Region": [...]}}``: a list that is the only
    member of its object is the item list, rendered as repeated ``<Region>`` elements. A list among
    other members (``{"TotalCount": 2, "Regions": [...]}``) is a bare container: it gets an item
    element named by dropping the plural ``s`` (``Regions`` -> ``Region``), or ``item``.
    """
    if isinstance(value, dict):
        return _members(value, container=len(value) == 1)
    if isinstance(value, list):  # a list in a list: an item element holding its items
        return {"item": [_itemize(element) for element in value]}
    if isinstance(value, str):
        return _XML_ILLEGAL.sub("", value)
    return value


_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.-]")


@lru_cache(maxsize=4096)
def xml_name(key: str) -> str:
    """A JSON key as an element name: the service's keys are not ours to refuse.

    A key that is no XML name (``1x``, ``a b``, ``env:prod``: a colon would declare a namespace
    prefix nobody bound) or that xmltodict reads as markup (``@attr``, ``#text``) would give
    unparseable XML or no answer at all, so every other character becomes ``_`` and a name that
    cannot start an element gets a ``_`` in front. Only ASCII is kept: parsers disagree on which
    other letters start a name.
    """
    if _XML_NAME.fullmatch(key):
        return key
    name = _NOT_NAME_CHAR.sub("_", key)
    return name if _XML_NAME.fullmatch(name) else f"_{name}"


def _members(value: dict[str, Any], *, container: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = xml_name(key)
        if name in out:  # "a b" beside "a_b": both kept, the later one numbered
            name = next(f"{name}_{n}" for n in range(2, len(out) + 3) if f"{name}_{n}" not in out)
        if isinstance(item, list):
            elements = [_itemize(element) for element in item]
            out[name] = elements if container else {_singular(name): elements}
        else:
            out[name] = _itemize(item)
    return out


def _singular(name: str) -> str:
    return name[:-1] if len(name) > 1 and name.endswith("s") else "item"


def success_body(fmt: str, action: str, data: Any) -> bytes:
    """An answer in the caller's format: ``data`` as JSON, or (an object) as the members of XML's
    ``{Action}Response`` root element."""
    if fmt == "JSON":
        return json_bytes(data)
    root = xml_name(f"{action or 'Gateway'}Response")
    # The root is never a container: its lists always get their item element.
    body: str = xmltodict.unparse({root: _members(data, container=False)}, full_document=False,
                                  short_empty_elements=False)
    return (XML_DECLARATION + body).encode("utf-8", XML_ERRORS)


@lru_cache(maxsize=64)  # a service answers with one or two content types
def is_json(content_type: bytes) -> bool:
    """Whether a ``Content-Type`` value names JSON (``application/json``, ``application/*+json``)."""
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")
