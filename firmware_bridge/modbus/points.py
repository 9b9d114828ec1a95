"""What to read from a Modbus device: named points, their decoding, and a read planner."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Function = Literal["holding", "input", "coil", "discrete"]
ValueType = Literal["uint16", "int16", "uint32", "int32", "float32", "bool"]
WordOrder = Literal["big", "little"]

FUNCTIONS: tuple[Function, ...] = ("holding", "input", "coil", "discrete")
BIT_FUNCTIONS = frozenset({"coil", "discrete"})
MAX_REGISTERS = 125  # per read request, by the Modbus spec (function codes 3 and 4)
MAX_BITS = 2000  # per read request, by the Modbus spec (function codes 1 and 2)

_REGISTERS = {"uint16": 1, "int16": 1, "bool": 1, "uint32": 2, "int32": 2, "float32": 2}
_STRUCT = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}


@dataclass(frozen=True)
class RegisterPoint:
    """One named value of a device: where it sits, how it is encoded, how to scale it."""

    name: str
    address: int
    function: Function = "holding"
    type: ValueType = "uint16"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    word_order: WordOrder = "big"  # order of the two registers of a 32-bit value

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a register point needs a name")
        if self.function not in FUNCTIONS:
            raise ValueError(f"{self.name}: unknown function {self.function!r}")
        if self.type not in _REGISTERS:
            raise ValueError(f"{self.name}: unknown type {self.type!r}")
        if self.function in BIT_FUNCTIONS and self.type != "bool":
            raise ValueError(f"{self.name}: a {self.function} is one bit, its type must be 'bool'")
        if self.word_order not in ("big", "little"):
            raise ValueError(f"{self.name}: word_order must be 'big' or 'little'")
        if self.address < 0 or self.end > 0x10000:
            raise ValueError(f"{self.name}: address {self.address} is outside 0-65535")

    @property
    def count(self) -> int:
        """Registers (or bits, for coils and discrete inputs) the point spans."""
        return 1 if self.function in BIT_FUNCTIONS else _REGISTERS[self.type]

    @property
    def end(self) -> int:
        """The first address after the point."""
        return self.address + self.count


@dataclass(frozen=True)
class ReadBlock:
    """One read request: a contiguous range of one function, covering some points."""

    function: Function
    address: int
    count: int
    points: tuple[RegisterPoint, ...]


def plan_reads(
    points: Iterable[RegisterPoint], max_registers: int = MAX_REGISTERS, max_gap: int = 8
) -> list[ReadBlock]:
    """Coalesce points of the same function into as few contiguous read requests as allowed."""
    # Points at most max_gap registers apart share a request and the gap is read and thrown
    # away: at 9600 baud 8 registers cost less than a request of their own (8 bytes, a
    # response header and two 3.5-character pauses). A device that answers ILLEGAL ADDRESS
    # to registers it lacks needs max_gap=0. For coils and discrete inputs the gap is 16
    # times larger, as 16 bits take the room of one register on the wire.
    if not 2 <= max_registers <= MAX_REGISTERS:
        raise ValueError(f"max_registers must be 2-{MAX_REGISTERS}, not {max_registers}")
    if max_gap < 0:
        raise ValueError(f"max_gap must not be negative, not {max_gap}")
    points = tuple(points)
    names = [p.name for p in points]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"duplicate point names: {', '.join(duplicates)}")
    blocks: list[ReadBlock] = []
    for function in FUNCTIONS:
        bits = function in BIT_FUNCTIONS
        limit, gap = (MAX_BITS, 16 * max_gap) if bits else (max_registers, max_gap)
        members = sorted((p for p in points if p.function == function), key=lambda p: (p.address, p.end))
        current: list[RegisterPoint] = []
        start = end = 0
        for point in members:
            if current and point.address - end <= gap and max(end, point.end) - start <= limit:
                current.append(point)
                end = max(end, point.end)
                continue
            if current:
                blocks.append(ReadBlock(function, start, end - start, tuple(current)))
            current, start, end = [point], point.address, point.end
        if current:
            blocks.append(ReadBlock(function, start, end - start, tuple(current)))
    return blocks


def decode_points(
    points: Iterable[RegisterPoint], function: Function, start_address: int,
    registers_or_bits: Sequence[int],
) -> dict[str, float]:
    """Values (raw * scale + offset) of the points of `function` in data read from start_address."""
    # ValueError, not IndexError or garbage, when a point lies outside the data (a short
    # response), a "register" is not 16 bits, or a value is NaN or infinite (float32 NaN
    # is how many sensors say "warming up" or "probe fault"; nothing downstream can store
    # it): the bus turns it into a ModbusReadError.
    values: dict[str, float] = {}
    for point in points:
        if point.function != function:
            continue
        first = point.address - start_address
        if first < 0 or first + point.count > len(registers_or_bits):
            raise ValueError(
                f"{point.name}: {function} {point.address} (+{point.count}) is not in the "
                f"{len(registers_or_bits)} values read from {start_address}"
            )
        raw = _raw_value(point, registers_or_bits[first:first + point.count])
        value = raw * point.scale + point.offset
        if not math.isfinite(value):
            raise ValueError(f"{point.name}: value is {value} (raw {raw}), not a number")
        values[point.name] = value
    return values


def _raw_value(point: RegisterPoint, words: Sequence[int]) -> float:
    if point.type == "bool":
        return 1.0 if words[0] else 0.0
    if point.word_order == "little":
        words = list(reversed(words))
    try:
        data = b"".join(int(word).to_bytes(2, "big") for word in words)
    except OverflowError as err:  # a negative or > 16-bit "register": not from a device
        raise ValueError(f"{point.name}: register value out of range in {list(words)}") from err
    return float(struct.unpack(_STRUCT[point.type], data)[0])
