"""Human quantities on the command line: byte sizes, byte rates, CPU shares and durations.

`SYNTAX` says which of them each unit of worker/limits.py is, for the limit flags and output.

Sizes accept SI (kB, MB, GB, TB: powers of 1000) and IEC (KiB, MiB, GiB, TiB: powers of
1024) units, case-insensitively, as in ``256MiB`` or ``1.5GB``. A bare number is bytes.
Single letters such as ``256M`` are refused: docker reads them as MiB and SI as MB, and a
memory limit that is off by 5 % is a bug nobody notices. Rates are sizes with an optional
``/s`` suffix (``10MB/s``).
"""

from __future__ import annotations

import dataclasses
import fractions
import math
import re
import types
from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, TypeVar

from worker.limits import Unit

_Number = TypeVar("_Number", int, float)

_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)
# The largest value the proto's int64 fields can carry.
_INT64_MAX = 2**63 - 1
_IEC_STEPS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION = re.compile(
    rf"(?P<bare>{_NUMBER})|" + "".join(rf"(?:(?P<{u}>{_NUMBER}){u})?" for u in _DURATION_UNITS),
    re.IGNORECASE,
)


class QuantityError(ValueError):
    """A command-line quantity could not be parsed; the message says what is expected."""


def parse_size(text: str) -> int:
    """Parses a byte size such as ``256MiB``, ``10MB`` or ``4096``.

    Args:
        text: The size as typed.

    Returns:
        The size in bytes, rounded to the nearest byte; at least 1.

    Raises:
        QuantityError: The text is not a positive size with a known unit.
    """
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise QuantityError(
            f"invalid size {text!r}: use a number with a unit such as 256MiB, 10MB or 4096"
        )
    # Exact arithmetic: a float loses whole bytes above 2**53 (576460752305MB was off by 64).
    value = round(fractions.Fraction(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise QuantityError(f"invalid size {text!r}: must be at least 1 byte")
    if value > _INT64_MAX:
        raise QuantityError(f"invalid size {text!r}: too large")
    return value


def parse_rate(text: str) -> int:
    """Parses a byte rate such as ``10MB/s`` or ``1MiB`` (the ``/s`` is optional).

    Args:
        text: The rate as typed.

    Returns:
        The rate in bytes per second.

    Raises:
        QuantityError: The text is not a positive rate with a known unit.
    """
    size = text.strip()
    if size.lower().endswith("/s"):
        size = size[:-2]
    try:
        return parse_size(size)
    except QuantityError:
        raise QuantityError(
            f"invalid rate {text!r}: use a size per second such as 10MB/s or 512KiB/s"
        ) from None


def parse_cpu(text: str) -> float:
    """Parses a CPU share in cores, such as ``0.5`` or ``2``.

    Args:
        text: The share as typed.

    Returns:
        The share as a float greater than zero.

    Raises:
        QuantityError: The text is not a finite number greater than zero.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise QuantityError(f"invalid CPU share {text!r}: use cores, such as 0.5 or 2")
    return value


def parse_positive_int(text: str) -> int:
    """Parses a count such as a pids limit.

    Args:
        text: The count as typed.

    Returns:
        The count, at least 1.

    Raises:
        QuantityError: The text is not a whole number of at least 1.
    """
    try:
        value = int(text, 10)
    except ValueError:
        value = 0
    if not 1 <= value <= _INT64_MAX:
        raise QuantityError(f"invalid count {text!r}: use a whole number of at least 1")
    return value


def parse_seconds(text: str) -> float:
    """Parses a duration: seconds such as ``5`` or ``0.5``, or with units as ``30s``, ``1h30m``.

    The units are ``s``, ``m``, ``h`` and ``d``, largest first, each at most once.

    Args:
        text: The duration as typed.

    Returns:
        The duration in seconds, zero or more.

    Raises:
        QuantityError: The text is not such a finite duration.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None or not text.strip():
        value = math.nan
    elif match.group("bare") is not None:
        value = float(match.group("bare"))
    else:
        value = sum(float(match.group(u) or 0) * s for u, s in _DURATION_UNITS.items())
    if not math.isfinite(value):  # Also a number too long for a float.
        raise QuantityError(
            f"invalid duration {text!r}: use seconds (5, 0.5) or units (30s, 10m, 1h30m, 2d)"
        )
    return value


def format_bytes(count: int) -> str:
    """Formats a byte count in IEC units: ``512 B``, ``1.5 KiB``, ``256 MiB``.

    Args:
        count: Bytes, zero or more.

    Returns:
        The count with at most one decimal and its unit.
    """
    value = float(count)
    for step in _IEC_STEPS:
        if abs(value) < 1024 or step == _IEC_STEPS[-1]:
            break
        value /= 1024
    if step == "B":
        return f"{count} B"
    return f"{value:.1f}".removesuffix(".0") + f" {step}"


def format_cores(cores: float) -> str:
    """Formats a CPU share in cores: ``0.5``, ``2``."""
    return f"{cores:g}"


def format_rate(rate: int) -> str:
    """Formats a byte rate in IEC units: ``9.5 MiB/s``."""
    return format_bytes(rate) + "/s"


def format_seconds(seconds: float) -> str:
    """Formats a duration compactly: ``0.25s``, ``12.3s``, ``5m02s``, ``3h07m``.

    Args:
        seconds: The duration, zero or more.

    Returns:
        The duration at a precision that suits its size.
    """
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclasses.dataclass(frozen=True, slots=True)
class Syntax(Generic[_Number]):
    """How jobctl reads and writes the numbers of one unit.

    Attributes:
        parse: Parses a number as typed; raises QuantityError.
        format: Formats a number for people.
        metavar: What usage shows in place of the number, such as ``SIZE``.
    """

    parse: Callable[[str], _Number]
    format: Callable[[_Number], str]
    metavar: str


SYNTAX: Final[Mapping[Unit, Syntax[Any]]] = types.MappingProxyType(
    {
        Unit.CORES: Syntax(parse_cpu, format_cores, "CORES"),
        Unit.BYTES: Syntax(parse_size, format_bytes, "SIZE"),
        Unit.BYTES_PER_SECOND: Syntax(parse_rate, format_rate, "RATE"),
        Unit.COUNT: Syntax(parse_positive_int, str, "N"),
        Unit.SECONDS: Syntax(parse_seconds, format_seconds, "DURATION"),
    }
)
"""Each limit unit's syntax, for jobctl's limit flags and its display of limits."""
