"""The catalog against the table it transcribes: a slip in a code, status or message fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.catalog import BY_CODE, SEED, Err
from gateway.errors import ApiError, GatewayError

TABLE = Path(__file__).parent / "data" / "common-errors.seed.txt"


def table_rows() -> list[tuple[str, str, int, str]]:
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) < 4 or not cells[2].isdigit():
            continue  # prose, the header row, the trailing date
        rows.append((cells[0], cells[1], int(cells[2]), cells[3]))
    return rows


def test_the_table_has_forty_rows() -> None:
    assert len(table_rows()) == 40


def test_every_row_is_a_member_in_table_order() -> None:
    members = list(SEED)
    assert len(members) == len(table_rows())
    for member, (code, message, status, meaning) in zip(members, table_rows(), strict=True):
        assert (member.code, member.status, member.value.message()) == (code, status, message), (
            f"{member.name} does not transcribe the row for {meaning!r}"
        )


def test_rows_sharing_a_code_are_distinct_members() -> None:
    by_code: dict[str, int] = {}
    for member in SEED:
        by_code[member.code] = by_code.get(member.code, 0) + 1
    assert by_code["MissingParameter"] == 6
    assert by_code["Throttling"] == 2
    assert by_code["InvalidParameter"] == 3
    assert by_code["UnsupportedParameter"] == 2
    assert len({member.name for member in SEED}) == 40


@pytest.mark.parametrize(
    ("err", "params", "message"),
    [
        (Err.MISSING_ACTION, {"name": "SignatureNonce"},
         "The input parameter “SignatureNonce” that is mandatory for processing this request is not supplied"),
        (Err.UNSUPPORTED_PARAMETER, {"name": "Foo"}, "The parameter ”Foo” is not supported."),
        (Err.PARAMETER_NOT_PERMITTED, {"name": "PageSize"}, "The parameter ”PageSize” is not supported."),
    ],
)
def test_templates_name_the_parameter(err: Err, params: dict[str, str], message: str) -> None:
    assert GatewayError(err, **params).message == message


def test_api_error_takes_a_member_or_a_catalogued_code() -> None:
    assert ApiError("Forbidden.InstanceNotFound").err is Err.INSTANCE_NOT_FOUND
    assert ApiError(Err.DISK_NOT_FOUND).status == 404
    assert ApiError("Throttling", message="slow down").message == "slow down"
    with pytest.raises(ValueError, match="not a catalogued"):
        ApiError("NoSuchCode")
    assert BY_CODE["MissingParameter"] is Err.MISSING_ACTION
