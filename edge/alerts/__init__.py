"""Safety-alert rules and room timetables: pure logic, fed events and the time by the caller."""

from edge.alerts.rules import RuleEngine
from edge.alerts.schedule import RoomSchedule
from edge.alerts.signals import AlertSignal

__all__ = ["AlertSignal", "RoomSchedule", "RuleEngine"]
