import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli import units
from worker.limits import Unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4096", 4096),
        ("1B", 1),
        ("256MiB", 256 * 1024**2),
        ("256mib", 256 * 1024**2),
        ("10MB", 10_000_000),
        ("1.5GiB", 3 * 1024**3 // 2),
        ("1kB", 1000),
        ("2KiB", 2048),
        ("1TB", 10**12),
        (" 3 GB ", 3 * 10**9),
        (".5KiB", 512),
    ],
)
def test_parse_size_accepts_si_and_iec(text: str, expected: int) -> None:
    assert units.parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["", "MiB", "10M", "10Q", "-5MiB", "0", "0.1B", "1e3", "ten", "1 2MB", "99999999999TiB"]
)
def test_parse_size_rejects_ambiguous_or_invalid(text: str) -> None:
    with pytest.raises(units.QuantityError, match="invalid size"):
        units.parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10MB/s", 10_000_000), ("512KiB/s", 512 * 1024), ("1MiB", 1024**2), ("100/s", 100)],
)
def test_parse_rate(text: str, expected: int) -> None:
    assert units.parse_rate(text) == expected


@pytest.mark.parametrize("text", ["10MB/m", "/s", "fast", "0/s"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(units.QuantityError, match="invalid rate"):
        units.parse_rate(text)


@pytest.mark.parametrize(("text", "expected"), [("0.5", 0.5), ("2", 2.0), ("1e-2", 0.01)])
def test_parse_cpu(text: str, expected: float) -> None:
    assert units.parse_cpu(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "half", ""])
def test_parse_cpu_rejects(text: str) -> None:
    with pytest.raises(units.QuantityError, match="invalid CPU share"):
        units.parse_cpu(text)


@pytest.mark.parametrize("text", ["0", "-3", "1.5", "x", str(2**63)])
def test_parse_positive_int_rejects(text: str) -> None:
    with pytest.raises(units.QuantityError, match="invalid count"):
        units.parse_positive_int(text)


def test_parse_positive_int() -> None:
    assert units.parse_positive_int("64") == 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0.0),
        ("2.5", 2.5),
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("1.5H", 5400.0),
        ("2d", 172800.0),
        (" 1m5s ", 65.0),
    ],
)
def test_parse_seconds(text: str, expected: float) -> None:
    assert units.parse_seconds(text) == expected


@pytest.mark.parametrize("text", ["-1", "inf", "soon", "", "s", "1s1m", "1x", "9" * 400])
def test_parse_seconds_rejects(text: str) -> None:
    with pytest.raises(units.QuantityError, match="invalid duration"):
        units.parse_seconds(text)


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"), (256 * 1024**2, "256 MiB")],
)
def test_format_bytes(count: int, expected: str) -> None:
    assert units.format_bytes(count) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.25, "0.25s"), (12.34, "12.3s"), (302, "5m02s"), (3 * 3600 + 7 * 60, "3h07m")],
)
def test_format_seconds(seconds: float, expected: str) -> None:
    assert units.format_seconds(seconds) == expected


@given(st.integers(min_value=1, max_value=2**40), st.sampled_from(["B", "KiB", "MiB", "kB", "MB"]))
def test_parse_size_round_trips_whole_numbers(number: int, unit: str) -> None:
    factor = {"B": 1, "KiB": 1024, "MiB": 1024**2, "kB": 1000, "MB": 1000**2}[unit]
    assert units.parse_size(f"{number}{unit}") == number * factor


@given(st.text(max_size=12))
def test_parse_size_never_fails_with_another_error(text: str) -> None:
    try:
        value = units.parse_size(text)
    except units.QuantityError:
        return
    assert value >= 1 and not math.isnan(value)


def test_every_limit_unit_has_a_syntax() -> None:
    assert set(units.SYNTAX) == set(Unit)


@pytest.mark.parametrize(
    ("unit", "text", "shown"),
    [
        (Unit.CORES, "0.5", "0.5"),
        (Unit.BYTES, "256MiB", "256 MiB"),
        (Unit.BYTES_PER_SECOND, "10MB/s", "9.5 MiB/s"),
        (Unit.COUNT, "64", "64"),
    ],
)
def test_syntax_parses_and_formats_each_unit(unit: Unit, text: str, shown: str) -> None:
    syntax = units.SYNTAX[unit]
    assert syntax.format(syntax.parse(text)) == shown
