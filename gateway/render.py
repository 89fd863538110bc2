"""Error and success bodies in XML and JSON (CONTRACT §3).

Exact bytes matter: the SDKs compare the content type as a string (``text/xml;charset=utf-8``, no
space) and read fields by name, so bodies are compact and fields come in the documented order.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

import xmltodict

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
CONTENT_TYPES = {"XML": "text/xml;charset=utf-8", "JSON": "application/json;charset=utf-8"}

# XML 1.0 cannot carry these characters at all, even escaped; a value that holds one (a NUL in an
# echoed parameter, say) would make the whole answer unparseable, so they are dropped.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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
    return head.encode(), tail.encode()


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


def success_body(fmt: str, action: str, data: dict[str, Any]) -> bytes:
    """A success answer in the caller's format; XML's root element is ``{Action}Response``."""
    if fmt == "JSON":
        return _compact(data).encode()
    root = f"{action or 'Gateway'}Response"
    # The root is never a container: its lists always get their item element.
    body: str = xmltodict.unparse({root: _members(data, container=False)}, full_document=False,
                                  short_empty_elements=False)
    return (XML_DECLARATION + body).encode()
