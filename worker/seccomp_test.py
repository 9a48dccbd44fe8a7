"""The seccomp program as assembled: its shape on both architectures, and its jumps."""

from __future__ import annotations

import struct

import pytest

from worker import seccomp

_INSTRUCTION = struct.Struct("=HBBI")


def _decode(program: bytes) -> list[tuple[int, int, int, int]]:
    return list(_INSTRUCTION.iter_unpack(program))


@pytest.mark.parametrize(("machine", "audit"), [("x86_64", 0xC000003E), ("aarch64", 0xC00000B7)])
def test_the_architecture_is_checked_first(machine: str, audit: int) -> None:
    program = _decode(seccomp.build(machine))
    # Load seccomp_data.arch, then anything else jumps to the last instruction: EPERM.
    assert program[0] == (0x20, 0, 0, 4)
    code, true, false, k = program[1]
    assert (code, true, k) == (0x15, 0, audit)
    assert 1 + false + 1 == len(program) - 1
    assert program[-1] == (0x06, 0, 0, 0x00050000 | 1)


def test_every_jump_lands_inside_the_program() -> None:
    for machine in ("x86_64", "aarch64"):
        program = _decode(seccomp.build(machine))
        for index, (code, true, false, _) in enumerate(program):
            if code & 0x07 == 0x05:  # BPF_JMP
                assert index + 1 + max(true, false) < len(program)
        assert program[-1][0] == 0x06  # Ends in a return.


def test_only_x86_64_refuses_x32_numbers() -> None:
    x32 = [op for op in _decode(seccomp.build("x86_64")) if op[3] == 0x40000000]
    assert [op[0] for op in x32] == [0x35]  # JGE
    assert not [op for op in _decode(seccomp.build("aarch64")) if op[3] == 0x40000000]


def test_an_unknown_architecture_has_no_filter() -> None:
    with pytest.raises(OSError, match="no seccomp filter for mips"):
        seccomp.build("mips")
