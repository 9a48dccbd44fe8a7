"""The resource limits of a job, and the table that defines each limit once.

A limit is a field of `Limits` whose `dataclasses.field` metadata holds its `LimitInfo`: its
unit, bounds, jobworkerd's default and maximum, and how jobctl spells and shows it. Every
list of limits elsewhere (the API's conversions, jobworkerd's flags, jobctl's flags and
output) is derived from `LIMIT_TABLE`, so adding a limit is one field here plus the places
docs/design.md names. Standard library only: jobctl imports this module too.
"""

from __future__ import annotations

import dataclasses
import enum
import types
from collections.abc import Mapping
from typing import Any, Final

from worker.errors import InvalidSpec

# The highest integer limit: beyond any real one, and within the proto's int64 fields.
_INT_HIGH: Final = 1 << 62
# The dataclasses.field metadata key under which each Limits field keeps its LimitInfo.
_INFO: Final = "limit"


class Unit(enum.Enum):
    """What a limit's number counts; it fixes the number's Python type.

    Each value is the word that follows such a number in messages and help; a count has none.
    """

    CORES = "cores"
    BYTES = "bytes"
    BYTES_PER_SECOND = "bytes/s"
    COUNT = ""
    SECONDS = "seconds"

    @property
    def python_type(self) -> type[float] | type[int]:
        """The type of a number in this unit: float for CORES and SECONDS, else int."""
        return float if self in (Unit.CORES, Unit.SECONDS) else int


def _number_text(value: float) -> str:
    if value == _INT_HIGH:
        return f"2**{_INT_HIGH.bit_length() - 1}"
    return str(value)


@dataclasses.dataclass(frozen=True, slots=True)
class LimitInfo:
    """One row of the limit table: everything about a limit but its name.

    Every limit is one number, and a larger number allows more: a value is checked against
    the bounds and against the daemon's maximum with ``<=``, nothing else. A limit that is
    not one such number (a set of devices, a choice of policy) needs more than a row here.

    Attributes:
        unit: What the number counts, which fixes its type and jobctl's syntax for it.
        low: The smallest value accepted.
        high: The largest value accepted, whatever the daemon's maximum.
        daemon_default: The default of jobworkerd's ``--default_<name>``, the value of a
            job that sets none; None leaves such jobs unlimited.
        daemon_maximum: The default of jobworkerd's ``--max_<name>``, the largest value a
            request may ask for; None sets no cap.
        flag: jobctl's option, such as ``--io-read``.
        help: jobctl's help for the option, with an example in jobctl's syntax.
        label: What jobctl's status calls the limit, such as ``io read``.
    """

    unit: Unit
    low: float
    high: float
    daemon_default: float | None
    daemon_maximum: float | None
    flag: str
    help: str
    label: str

    def check(self, field: str, value: object) -> None:
        """Checks a value's type and bounds.

        Args:
            field: The name errors give, such as ``limits.cpu``.
            value: The value to check.

        Raises:
            InvalidSpec: On ``field`` when the value is not of the unit's type (bool is not a
                number here; an int is a float) or lies outside [low, high], NaN included.
        """
        number = self.unit.python_type
        if isinstance(value, bool) or not isinstance(value, (int, number)):
            kind = "a number" if number is float else "an integer"
            raise InvalidSpec(field, f"must be {kind}")
        if not self.low <= value <= self.high:
            range_text = f"{_number_text(self.low)} and {_number_text(self.high)} {self.unit.value}"
            raise InvalidSpec(field, f"must be between {range_text.rstrip()}, got {value}")


def _limit(info: LimitInfo) -> Any:
    """Returns the dataclass field of one limit: unset (None) by default, with its row.

    Typed Any, as `dataclasses.field` is typed as its default, so that mypy keeps the type
    the field is declared with.
    """
    return dataclasses.field(default=None, metadata={_INFO: info})


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Per-job resource limits; None means "use the daemon default" (or unlimited).

    The field declarations are the limit table (`LIMIT_TABLE`); a field's type is its unit's
    ``python_type`` or None, and the proto message ``Limits`` has a field of the same name.

    Attributes:
        cpu: CPU bandwidth as a fraction of one core; 0.5 is half a core, 2.0 two cores.
        memory_bytes: Hard memory limit in bytes, swap excluded.
        io_read_bps: Read bandwidth limit in bytes per second on throttled block devices.
        io_write_bps: Write bandwidth limit in bytes per second on throttled block devices.
        pids: Maximum number of processes and threads.
        timeout_seconds: Run time after which the job is stopped, with the daemon's grace.
    """

    cpu: float | None = _limit(
        LimitInfo(
            unit=Unit.CORES,
            low=0.01,
            high=1024,
            daemon_default=1.0,
            daemon_maximum=2.0,
            flag="--cpu",
            help="CPU bandwidth in cores, e.g. 0.5",
            label="cpu",
        )
    )
    memory_bytes: int | None = _limit(
        LimitInfo(
            unit=Unit.BYTES,
            low=1 << 20,
            high=_INT_HIGH,
            daemon_default=512 << 20,
            daemon_maximum=8 << 30,
            flag="--memory",
            help="memory limit, e.g. 256MiB or 1GB (no swap)",
            label="memory",
        )
    )
    io_read_bps: int | None = _limit(
        LimitInfo(
            unit=Unit.BYTES_PER_SECOND,
            low=1,
            high=_INT_HIGH,
            daemon_default=None,
            daemon_maximum=1 << 30,
            flag="--io-read",
            help="block device read bandwidth, e.g. 10MB/s",
            label="io read",
        )
    )
    io_write_bps: int | None = _limit(
        LimitInfo(
            unit=Unit.BYTES_PER_SECOND,
            low=1,
            high=_INT_HIGH,
            daemon_default=None,
            daemon_maximum=1 << 30,
            flag="--io-write",
            help="block device write bandwidth, e.g. 10MB/s",
            label="io write",
        )
    )
    pids: int | None = _limit(
        LimitInfo(
            unit=Unit.COUNT,
            low=1,
            high=_INT_HIGH,
            daemon_default=256,
            daemon_maximum=4096,
            flag="--pids",
            help="maximum number of processes and threads",
            label="pids",
        )
    )
    timeout_seconds: float | None = _limit(
        LimitInfo(
            unit=Unit.SECONDS,
            low=0.001,
            high=1 << 32,
            daemon_default=None,
            daemon_maximum=30 * 24 * 3600,
            flag="--timeout",
            help="stop the job after this long (SIGTERM, grace, SIGKILL), e.g. 30s or 2h",
            label="timeout",
        )
    )

    def __post_init__(self) -> None:
        for name, info in LIMIT_TABLE.items():
            value = getattr(self, name)
            if value is not None:
                info.check(f"limits.{name}", value)

    def merged_over(self, defaults: Limits) -> Limits:
        """Returns these limits with unset fields taken from ``defaults``."""
        own = {name: getattr(self, name) for name in LIMIT_TABLE}
        return dataclasses.replace(defaults, **{k: v for k, v in own.items() if v is not None})

    def check_within(self, maximum: Limits) -> None:
        """Raises InvalidSpec when a set field exceeds the same field of ``maximum``.

        Every limit is one number where larger allows more (LimitInfo), so ``<=`` is the
        whole comparison; an unset maximum caps nothing.
        """
        for name in LIMIT_TABLE:
            value, cap = getattr(self, name), getattr(maximum, name)
            if value is not None and cap is not None and value > cap:
                raise InvalidSpec(f"limits.{name}", f"{value} exceeds the daemon maximum {cap}")


LIMIT_TABLE: Final[Mapping[str, LimitInfo]] = types.MappingProxyType(
    {field.name: field.metadata[_INFO] for field in dataclasses.fields(Limits)}
)
"""Each limit's row by its name, in declaration order; the name is the Limits field's and the
proto field's, and jobworkerd's flags are ``--default_<name>`` and ``--max_<name>``."""
