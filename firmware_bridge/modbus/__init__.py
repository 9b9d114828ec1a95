"""Modbus RTU and Modbus TCP sensor polling through pymodbus (framing is pymodbus's job)."""
