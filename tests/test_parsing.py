"""The query/form decoder on its own: it must read every spelling a client may send as urllib would."""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.parsing import BadInput, parse_into

names = st.text(min_size=1, max_size=12)
values = st.text(max_size=24)
spellings = st.sampled_from([
    lambda s: quote(s, safe=""),
    lambda s: quote_plus(s, safe=""),
    lambda s: re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), quote(s, safe="")),  # "%3a" means "%3A"
    lambda s: quote(s, safe=":/*~"),  # what some SDKs leave unescaped
])


@given(st.dictionaries(names, values, max_size=8), spellings)
def test_every_spelling_decodes_to_the_parameters_sent(params: dict[str, str], spell: object) -> None:
    raw = "&".join(f"{spell(k)}={spell(v)}" for k, v in params.items())  # type: ignore[operator]
    decoded: dict[str, str] = {}
    parse_into(raw.encode(), decoded)
    assert decoded == params


@given(st.binary(max_size=16))
def test_escaped_bytes_decode_as_urllib_does_or_are_refused(data: bytes) -> None:
    raw = "v=" + "".join(f"%{b:02X}" if i % 2 else f"%{b:02x}" for i, b in enumerate(data))
    decoded: dict[str, str] = {}
    try:
        expected = unquote(raw[2:], errors="strict")
    except UnicodeDecodeError:
        with pytest.raises(BadInput):
            parse_into(raw.encode(), decoded)
    else:
        parse_into(raw.encode(), decoded)
        assert decoded == {"v": expected}


@pytest.mark.parametrize("raw", [b"a=%", b"a=%4", b"a=%zz", b"a=1&a=2", b"=1", b"a=%FF", b"\xff=1"])
def test_ambiguous_input_is_refused(raw: bytes) -> None:
    with pytest.raises(BadInput):
        parse_into(raw, {})
