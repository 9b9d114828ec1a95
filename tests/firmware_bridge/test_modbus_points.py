"""Register points: decoding of every type and word order, and the read planner."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.modbus.points import RegisterPoint, decode_points, plan_reads


def words(fmt: str, value: float) -> list[int]:
    return list(struct.unpack(f">{struct.calcsize(fmt) // 2}H", struct.pack(f">{fmt}", value)))


@pytest.mark.parametrize(
    ("point", "registers", "expected"),
    [
        (RegisterPoint("u16", 0, type="uint16"), [0xFFFF], 65535.0),
        (RegisterPoint("i16", 0, type="int16"), [0xFFFF], -1.0),
        (RegisterPoint("i16min", 0, type="int16"), [0x8000], -32768.0),
        (RegisterPoint("temp", 0, type="int16", scale=0.01), words("h", -2050), -20.5),
        (RegisterPoint("u32", 0, type="uint32"), [0x0001, 0x0002], 65538.0),
        (RegisterPoint("u32le", 0, type="uint32", word_order="little"), [0x0002, 0x0001], 65538.0),
        (RegisterPoint("i32", 0, type="int32"), [0xFFFF, 0xFFFE], -2.0),
        (RegisterPoint("i32le", 0, type="int32", word_order="little"), [0xFFFE, 0xFFFF], -2.0),
        (RegisterPoint("i32big", 0, type="int32", scale=0.001), words("i", -123456789), -123456.789),
        (RegisterPoint("f32", 0, type="float32"), words("f", 21.5), 21.5),
        (RegisterPoint("f32le", 0, type="float32", word_order="little"), words("f", -0.25)[::-1], -0.25),
        (RegisterPoint("kelvin", 0, scale=0.1, offset=-273.15), [2731], -0.05),
        (RegisterPoint("flag", 0, type="bool"), [0], 0.0),
        (RegisterPoint("flag", 0, type="bool"), [0x0100], 1.0),
        (RegisterPoint("led", 0, "coil", "bool"), [True], 1.0),
        (RegisterPoint("fault", 0, "discrete", "bool", scale=-1.0, offset=1.0), [True], 0.0),
    ],
)
def test_decode_types(point: RegisterPoint, registers: list[int], expected: float) -> None:
    values = decode_points([point], point.function, 0, registers)
    assert values == {point.name: pytest.approx(expected)}


def test_decode_uses_the_start_address_and_ignores_other_functions() -> None:
    points = [
        RegisterPoint("a", 101, "input", "int16"),
        RegisterPoint("b", 103, "input", "uint32", word_order="little"),
        RegisterPoint("c", 101, "holding"),  # same address, other function: not in this data
    ]
    data = [7, 0xFFF6, 9, 0x0000, 0x0001]  # addresses 100-104
    assert decode_points(points, "input", 100, data) == {"a": -10.0, "b": 65536.0}


def test_short_data_and_bad_registers_are_value_errors() -> None:
    point = RegisterPoint("p", 10, type="float32")
    with pytest.raises(ValueError, match="p: holding 10"):
        decode_points([point], "holding", 10, [0x41AC])  # one register of two
    with pytest.raises(ValueError, match="p: holding 10"):
        decode_points([point], "holding", 11, [0x41AC, 0, 0])  # starts after the point
    with pytest.raises(ValueError, match="out of range"):
        decode_points([RegisterPoint("q", 0)], "holding", 0, [70000])


@pytest.mark.parametrize(
    ("point", "registers"),
    [
        (RegisterPoint("pm25", 4, "input", "float32"), [0x7FC0, 0x0000]),  # quiet NaN: warming up
        (RegisterPoint("pm25", 4, "input", "float32"), [0xFF80, 0x0000]),  # -inf
        (RegisterPoint("pm25", 4, "input", "float32", word_order="little"), [0x0001, 0x7F80]),  # a NaN
        (RegisterPoint("pm25", 4, "input", "float32", scale=1e300), words("f", 3e38)),  # inf once scaled
    ],
)
def test_non_finite_values_are_value_errors(point: RegisterPoint, registers: list[int]) -> None:
    # Nothing downstream can store NaN or inf (SQLite binds NaN as NULL; JSON has neither).
    with pytest.raises(ValueError, match=r"pm25: value is .*, not a number"):
        decode_points([point], "input", 4, registers)


def test_point_validation_and_count() -> None:
    assert RegisterPoint("x", 0, type="float32").count == 2
    assert RegisterPoint("x", 0, type="int16").count == 1
    assert RegisterPoint("x", 5, "coil", "bool").count == 1
    with pytest.raises(ValueError, match="one bit"):
        RegisterPoint("x", 0, "coil", "uint16")
    with pytest.raises(ValueError, match="outside"):
        RegisterPoint("x", 65535, type="uint32")
    with pytest.raises(ValueError, match="outside"):
        RegisterPoint("x", -1)
    with pytest.raises(ValueError, match="name"):
        RegisterPoint("", 0)


def test_plan_coalesces_small_gaps_per_function() -> None:
    points = [
        RegisterPoint("t", 1, "input", "int16"),
        RegisterPoint("co2", 0, "input"),
        RegisterPoint("pm", 10, "input", "float32"),  # gap of 8 after register 1: same request
        RegisterPoint("far", 30, "input"),  # gap of 18: a request of its own
        RegisterPoint("setpoint", 0, "holding"),
        RegisterPoint("led", 3, "coil", "bool"),
        RegisterPoint("relay", 100, "coil", "bool"),  # 96 bits apart: within 16 * 8
    ]
    blocks = plan_reads(points)
    summary = [(b.function, b.address, b.count, [p.name for p in b.points]) for b in blocks]
    assert summary == [
        ("holding", 0, 1, ["setpoint"]),
        ("input", 0, 12, ["co2", "t", "pm"]),
        ("input", 30, 1, ["far"]),
        ("coil", 3, 98, ["led", "relay"]),
    ]
    assert [b.count for b in plan_reads(points, max_gap=0) if b.function == "input"] == [2, 2, 1]


def test_plan_respects_max_registers_and_rejects_duplicates() -> None:
    points = [RegisterPoint(f"r{i}", i, type="uint32") for i in range(0, 20, 2)]
    blocks = plan_reads(points, max_registers=6)
    assert [(b.address, b.count) for b in blocks] == [(0, 6), (6, 6), (12, 6), (18, 2)]
    with pytest.raises(ValueError, match="duplicate point names: r2"):
        plan_reads([*points, RegisterPoint("r2", 50)])
    with pytest.raises(ValueError, match="max_registers"):
        plan_reads(points, max_registers=126)


@given(
    st.lists(
        st.tuples(st.integers(0, 400), st.sampled_from(["uint16", "int32", "float32"]),
                  st.sampled_from(["holding", "input"])),
        max_size=40,
    ),
    st.integers(2, 125),
    st.integers(0, 10),
)
def test_plan_covers_every_point_once_within_limits(
    specs: list[tuple[int, str, str]], max_registers: int, max_gap: int
) -> None:
    points = [RegisterPoint(f"p{i}", a, f, t) for i, (a, t, f) in enumerate(specs)]
    blocks = plan_reads(points, max_registers=max_registers, max_gap=max_gap)
    planned = [p for b in blocks for p in b.points]
    assert sorted(p.name for p in planned) == sorted(p.name for p in points)
    for block in blocks:
        assert block.count <= max_registers
        for point in block.points:
            assert point.function == block.function
            assert block.address <= point.address and point.end <= block.address + block.count
    # Decoding each block's slice of a device memory gives every point its value.
    memory = {f: [(a * 7 + len(f)) & 0xFFFF for a in range(0, 402)] for f in ("holding", "input")}
    values: dict[str, float] = {}
    for block in blocks:
        data = memory[block.function][block.address:block.address + block.count]
        values.update(decode_points(block.points, block.function, block.address, data))
    for point in points:
        direct = memory[point.function][point.address:point.end]
        assert values[point.name] == decode_points([point], point.function, point.address, direct)[point.name]
