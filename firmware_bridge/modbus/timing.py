"""Serial line timing of Modbus RTU: character time and the silent interval between frames."""

from __future__ import annotations

BITS_PER_CHAR = 11  # start + 8 data + parity (or a 2nd stop bit) + stop, as the RTU spec counts


def char_time_s(baudrate: int, bits_per_char: int = BITS_PER_CHAR) -> float:
    """Time one character occupies the line."""
    if baudrate <= 0:
        raise ValueError(f"baudrate must be positive, not {baudrate}")
    return bits_per_char / baudrate


def frame_gap_s(baudrate: int) -> float:
    """The silent interval (t3.5) that must separate two RTU frames on the line."""
    # The spec fixes t3.5 at 1.75 ms above 19200 baud: receivers could not time shorter gaps.
    return 3.5 * char_time_s(baudrate) if baudrate <= 19200 else 0.00175
