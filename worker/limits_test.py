"""Limits and the limit table: what is accepted, and the field and reason of what is not."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import InvalidSpec
from worker.limits import LIMIT_TABLE, LimitInfo, Limits, Unit

ROWS = list(LIMIT_TABLE.items())
ROW_IDS = list(LIMIT_TABLE)


def only(name: str, value: object) -> Limits:
    """Returns Limits with the one field ``name`` set (a name mypy cannot check)."""
    fields: dict[str, Any] = {name: value}
    return Limits(**fields)


def test_the_table_is_the_limits_fields_in_order() -> None:
    assert list(LIMIT_TABLE) == [f.name for f in dataclasses.fields(Limits)]


@pytest.mark.parametrize(("name", "info"), ROWS, ids=ROW_IDS)
def test_each_field_is_typed_as_its_unit(name: str, info: LimitInfo) -> None:
    assert typing.get_type_hints(Limits)[name] == info.unit.python_type | None


@pytest.mark.parametrize(("name", "info"), ROWS, ids=ROW_IDS)
def test_each_row_is_consistent(name: str, info: LimitInfo) -> None:
    assert info.low <= info.high
    for value in (info.daemon_default, info.daemon_maximum):
        assert value is None or info.low <= value <= info.high
    if info.daemon_default is not None and info.daemon_maximum is not None:
        assert info.daemon_default <= info.daemon_maximum
    assert info.flag.startswith("--") and info.help and info.label


def test_flags_and_labels_are_unique() -> None:
    assert len({info.flag for info in LIMIT_TABLE.values()}) == len(LIMIT_TABLE)
    assert len({info.label for info in LIMIT_TABLE.values()}) == len(LIMIT_TABLE)


def test_daemon_defaults_are_within_the_daemon_maximums() -> None:
    defaults: dict[str, Any] = {name: info.daemon_default for name, info in ROWS}
    maxima: dict[str, Any] = {name: info.daemon_maximum for name, info in ROWS}
    default, maximum = Limits(**defaults), Limits(**maxima)
    default.check_within(maximum)


@pytest.mark.parametrize(("name", "info"), ROWS, ids=ROW_IDS)
def test_the_bounds_are_inclusive(name: str, info: LimitInfo) -> None:
    number = info.unit.python_type
    for value in (number(info.low), number(info.high)):
        assert getattr(only(name, value), name) == value
    below = info.low / 2 if number is float else int(info.low) - 1
    above = info.high * 2 if number is float else int(info.high) + 1
    for value in (below, above):
        with pytest.raises(InvalidSpec, match=f"must be between .*, got {value}") as error:
            only(name, value)
        assert error.value.field == f"limits.{name}"


@pytest.mark.parametrize(("name", "info"), ROWS, ids=ROW_IDS)
def test_the_type_is_the_units(name: str, info: LimitInfo) -> None:
    wrong: list[object] = ["1", True, False, [1]]
    if info.unit.python_type is int:
        wrong.append(float(info.low))
    else:
        assert getattr(only(name, 1), name) == 1  # An int is a float.
        wrong.append(math.nan)
    kind = "a number" if info.unit.python_type is float else "an integer"
    for value in wrong:
        with pytest.raises(InvalidSpec, match=f"must be (between|{kind})") as error:
            only(name, value)
        assert error.value.field == f"limits.{name}"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cpu": -1}, "limits.cpu: must be between 0.01 and 1024 cores, got -1"),
        ({"cpu": "1"}, "limits.cpu: must be a number"),
        ({"memory_bytes": 1024}, "limits.memory_bytes: must be between 1048576 and 2**62 bytes"),
        ({"io_read_bps": 0}, "limits.io_read_bps: must be between 1 and 2**62 bytes/s, got 0"),
        ({"pids": 0}, "limits.pids: must be between 1 and 2**62, got 0"),
        ({"pids": 1.0}, "limits.pids: must be an integer"),
    ],
)
def test_messages_name_the_bounds_and_unit(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSpec) as error:
        Limits(**fields)  # type: ignore[arg-type]
    assert str(error.value).startswith(message)


@given(name=st.sampled_from(ROW_IDS), value=st.one_of(st.integers(), st.floats(), st.booleans()))
def test_any_number_is_accepted_within_the_bounds_or_refused_naming_the_field(
    name: str, value: float
) -> None:
    info = LIMIT_TABLE[name]
    fits = (
        not isinstance(value, bool)
        and isinstance(value, (int, info.unit.python_type))
        and info.low <= value <= info.high
    )
    try:
        limits = only(name, value)
    except InvalidSpec as error:
        assert not fits and error.field == f"limits.{name}"
    else:
        assert fits and getattr(limits, name) == value


@pytest.mark.parametrize(("name", "info"), ROWS, ids=ROW_IDS)
def test_merge_and_maximum_cover_every_limit(name: str, info: LimitInfo) -> None:
    low, high = info.unit.python_type(info.low), info.unit.python_type(info.high)
    assert Limits().merged_over(only(name, low)) == only(name, low)
    assert only(name, high).merged_over(only(name, low)) == only(name, high)
    only(name, low).check_within(only(name, low))
    only(name, high).check_within(Limits())
    with pytest.raises(InvalidSpec, match=f"{high} exceeds the daemon maximum {low}") as error:
        only(name, high).check_within(only(name, low))
    assert error.value.field == f"limits.{name}"


def test_units_are_those_in_use() -> None:
    assert {info.unit for info in LIMIT_TABLE.values()} == set(Unit)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cpu": 0.001}, "limits.cpu"),
        ({"cpu": True}, "limits.cpu"),
        ({"cpu": "1"}, "limits.cpu"),
        ({"memory_bytes": 1024}, "limits.memory_bytes"),
        ({"memory_bytes": 1.5}, "limits.memory_bytes"),
        ({"io_read_bps": 0}, "limits.io_read_bps"),
        ({"io_write_bps": 2**63}, "limits.io_write_bps"),
        ({"pids": 0}, "limits.pids"),
        ({"pids": False}, "limits.pids"),
    ],
)
def test_invalid_limit_names_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidSpec) as error:
        Limits(**fields)  # type: ignore[arg-type]
    assert error.value.field == field


def test_merge_takes_unset_fields_from_the_defaults_and_checks_the_maximum() -> None:
    merged = Limits(cpu=0.5).merged_over(Limits(cpu=1.0, pids=100))
    assert merged == Limits(cpu=0.5, pids=100)
    merged.check_within(Limits(cpu=0.5, memory_bytes=1 << 30))
    with pytest.raises(InvalidSpec, match="exceeds the daemon maximum 50") as error:
        merged.check_within(Limits(pids=50))
    assert error.value.field == "limits.pids"
