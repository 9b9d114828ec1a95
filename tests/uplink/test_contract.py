"""The campus/v1 contract: every envelope builder and the document's examples match the JSON Schemas."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jsonschema import Draft202012Validator

from edge.alerts.lifecycle import Alert, AlertState, Transition
from edge.alerts.service import alert_event
from edge.commands.service import CommandResult
from edge.events import SafetyEvent, Severity
from edge.store.database import Database
from edge.uplink import contract
from tests.uplink.schemas import KINDS, SCHEMA_DIR, errors, load, validate

DOC = SCHEMA_DIR.parent / "mqtt-contract.md"
SITE, GW, NOW = "demo-campus", "gw-101", 1795716933.5
DOC_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # the doc's published test key


def canonical(obj: dict[str, Any]) -> bytes:
    """The signed bytes of a command, as the doc defines them."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signed_cmd(**fields: Any) -> dict[str, Any]:
    cmd: dict[str, Any] = {"schema": "campus/v1/cmd", "command_id": "c-1", "device_id": "node-r101",
                           "action": "relay", "args": {"channel": 1, "state": "on"},
                           "issued_at": 1795717000, "expires_at": 1795717060, **fields}
    cmd["signature"] = base64.b64encode(DOC_KEY.sign(canonical(cmd))).decode("ascii")
    return cmd


def stored_payload(db: Database, event: SafetyEvent) -> dict[str, Any]:
    """Store an event for real and return its outbox payload (what the uplink will send)."""
    envelope = db.add_event(event, NOW)
    row = db.db.execute("SELECT payload FROM outbox WHERE msg_class = 'event' AND seq = ?",
                        [envelope.seq]).fetchone()
    stored: dict[str, Any] = json.loads(row[0])
    return stored


def intrusion_alert(action: str = "raised", actor: str = "rules") -> SafetyEvent:
    alert = Alert("5f0c2a3e-1d2b-4c3d-8e4f-a5b6c7d8e9f0", "intrusion:corridor-1:cam-c1:crossing", "intrusion",
                  Severity.CRITICAL, "corridor-1", "Person in corridor after hours", AlertState.RAISED,
                  NOW, NOW, {"zone_id": "crossing", "snapshot_id": "snap-1"}, "cam-c1")
    return alert_event(alert, Transition(alert.alert_id, action, actor, NOW + 1, ""))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "edge.db")
    yield database
    database.close()


@pytest.mark.parametrize("kind", KINDS)
def test_every_schema_is_a_valid_2020_12_schema_with_an_id(kind: str) -> None:
    schema = load(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f"/campus/v1/{kind}.schema.json")
    assert schema["properties"]["schema"] == {"const": f"campus/v1/{kind}"}
    assert ("schema" in schema["required"]) is (kind != "cmd")


def test_stored_events_as_sent_validate(db: Database) -> None:
    panic = SafetyEvent("panic_button", Severity.CRITICAL, NOW, "device:node-r101", "r101",
                        {"device_id": "node-r101", "code": "button_pressed", "input": "panic_button"})
    tamper = SafetyEvent("camera_tamper", Severity.WARNING, NOW, "camera:cam-1", None,
                         {"camera_id": "cam-1", "kind": "covered", "active": True, "snapshot_id": "s-1"})
    seqs = []
    for event in (panic, tamper, intrusion_alert(), intrusion_alert("acknowledged", "sam")):
        stored = stored_payload(db, event)
        seqs.append(stored["seq"])
        for historical in (False, True):
            validate("event", contract.finish(stored, "event", SITE, GW, NOW + 2, historical))
    assert seqs == sorted(seqs) and seqs[0] >= 1


def test_every_alert_action_validates(db: Database) -> None:
    for action in ("raised", "acknowledged", "resolved", "escalated", "snapshot"):
        stored = stored_payload(db, intrusion_alert(action, "system"))
        validate("event", contract.finish(stored, "event", SITE, GW, NOW, False))


def test_telemetry_occupancy_status_and_result_builders_validate() -> None:
    metrics = {"co2": {"min": 780, "avg": 801.4, "max": 823, "last": 812, "count": 12, "unit": "ppm"},
               "door_open": {"min": 0, "avg": 0.5, "max": 1, "last": 0, "count": 2, "unit": ""}}
    for room in ("r101", None):
        body = contract.telemetry_body("node-r101", room, NOW - 60, NOW, metrics)
        validate("telemetry", contract.finish(body, "telemetry", SITE, GW, NOW, True))
    for camera, zone in (("cam-r101", "front"), ("cam-r101", None), (None, None)):
        body = contract.occupancy_body("r101", 3, NOW, camera, zone)
        validate("occupancy", contract.finish(body, "occupancy", SITE, GW, NOW, False))
    validate("status", contract.status_message("online", SITE, GW, version="0.1.0",
                                               since="2026-11-26T18:15:12.000Z", config_version="ab12"))
    validate("status", contract.status_message("online", SITE, GW, version="0.1.0",
                                               since="2026-11-26T18:15:12Z", sent_at=NOW))
    validate("status", contract.status_message("offline", SITE, GW))
    for result in (CommandResult("c-1", "node-r101", "relay", "ok", detail={"attempts": 1}, finished_at=NOW),
                   CommandResult("", "", "", "rejected", "not JSON", finished_at=NOW),
                   CommandResult("c-2", "gateway", "ping", "running", duplicate=True, finished_at=NOW)):
        validate("cmd_result", contract.cmd_result_message(result.as_dict(), SITE, GW, NOW + 0.5))


def test_a_signed_command_validates_and_verifies() -> None:
    cmd = signed_cmd()
    validate("cmd", cmd)
    unsigned = {k: v for k, v in cmd.items() if k != "signature"}
    DOC_KEY.public_key().verify(base64.b64decode(cmd["signature"]), canonical(unsigned))
    del cmd["schema"]  # the platform may leave it out
    validate("cmd", {**cmd, "signature": signed_cmd()["signature"]})


def _valid_event() -> dict[str, Any]:
    stored = contract.finish({"event_id": "6ee68fd9-00b1-4c24-a336-be50a0e3d703", "seq": 1, "type": "motion",
                              "severity": "info", "room_id": "r1", "source": "device:n1", "occurred_at": NOW,
                              "data": {}}, "event", SITE, GW, NOW, False)
    validate("event", stored)
    return stored


@pytest.mark.parametrize(("change", "path"), [
    (lambda m: m.pop("seq"), "<root>: 'seq' is a required"),
    (lambda m: m.update(seq=0), "seq"),
    (lambda m: m.update(seq="7"), "seq"),
    (lambda m: m.update(severity="fatal"), "severity"),
    (lambda m: m.update(schema="campus/v2/event"), "schema"),
    (lambda m: m.update(schema="campus/v1/telemetry"), "schema"),
    (lambda m: m.update(event_id="not-a-uuid"), "event_id"),
    (lambda m: m.update(event_id="6EE68FD9-00B1-4C24-A336-BE50A0E3D703"), "event_id"),
    (lambda m: m.update(historical="no"), "historical"),
    (lambda m: m.update(data=[]), "data"),
    (lambda m: m.update(room_id="r 1"), "room_id"),
    (lambda m: m.update(type="alert", source="alerts", data={"alert_id": "a"}), "data"),
    (lambda m: m.update(type="alert", source="alerts", data={**intrusion_alert().data, "action": "closed"}),
     "data/action"),
])
def test_bad_events_fail(change: Any, path: str) -> None:
    message = _valid_event()
    change(message)
    with pytest.raises(AssertionError, match=f"invalid at {re.escape(path)}"):
        validate("event", message)


def test_other_kinds_bite() -> None:
    body = contract.finish(contract.telemetry_body("n1", None, 0, 60, {"co2": {"min": 1, "avg": 1, "max": 1,
                           "last": 1, "count": 1}}), "telemetry", SITE, GW, NOW, False)
    assert any(e.startswith("metrics/co2") and "unit" in e for e in errors("telemetry", body))
    assert errors("status", contract.status_message("online", SITE, GW))  # no version, no since
    assert errors("status", contract.status_message("away", SITE, GW))
    assert errors("status", contract.status_message("online", SITE, GW, version="1", since=NOW))
    negative = contract.occupancy_body("r1", -1, NOW, None, None)
    occ = contract.finish(negative, "occupancy", SITE, GW, NOW, False)
    assert errors("occupancy", occ)
    result = contract.cmd_result_message(CommandResult("c", "d", "a", "done").as_dict(), SITE, GW, NOW)
    assert errors("cmd_result", result)


@pytest.mark.parametrize("change", [
    lambda c: c.update(expire_at=1795717060),  # a typo: refused, not ignored
    lambda c: c.pop("signature"),
    lambda c: c.update(signature="c2lnbmF0dXJl"),
    lambda c: c.update(command_id=""),
    lambda c: c.update(command_id="x" * 129),
    lambda c: c.update(args=[1]),
    lambda c: c.update(schema="campus/v1/event"),
])
def test_bad_commands_fail(change: Any) -> None:
    cmd = signed_cmd()
    change(cmd)
    with pytest.raises(AssertionError, match="cmd message invalid"):
        validate("cmd", cmd)


def doc_examples() -> list[dict[str, Any]]:
    """The ```json blocks of the contract document that are whole messages."""
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [json.loads(block) for block in blocks if block.lstrip().startswith('{"schema"')]


def test_every_document_example_validates() -> None:
    examples = doc_examples()
    kinds = set()
    for example in examples:
        kind = example["schema"].removeprefix("campus/v1/")
        validate(kind, example)
        kinds.add(kind)
    assert kinds == set(KINDS)
    assert len(examples) >= 8


def test_the_documents_command_is_signed_by_the_documented_key() -> None:
    (cmd,) = [e for e in doc_examples() if e["schema"] == "campus/v1/cmd"]
    raw_key = base64.b64decode("A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=")
    assert "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=" in DOC.read_text(encoding="utf-8")
    unsigned = {k: v for k, v in cmd.items() if k != "signature"}
    public = Ed25519PublicKey.from_public_bytes(raw_key)
    public.verify(base64.b64decode(cmd["signature"]), canonical(unsigned))


def test_every_schema_file_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    files = sorted(p.name for p in SCHEMA_DIR.glob("*.schema.json"))
    assert files == sorted(f"{kind}.schema.json" for kind in KINDS)
    assert all(f"(schemas/{name})" in text for name in files)


def test_finishing_the_stored_text_equals_finishing_the_parsed_body() -> None:
    from edge.uplink.contract import finish, finish_text, occupancy_body

    stored_event = json.dumps({"event_id": "3f1e1c1a-8a9f-4b58-9a0e-2b7c8d0c1f00", "seq": 7,
                               "type": "panic_button", "severity": "critical", "room_id": "r1",
                               "source": "device:n1", "occurred_at": 1.5, "data": {"device_id": "n1"}},
                              separators=(",", ":"))
    stored_occupancy = json.dumps(occupancy_body("r1", 3, 2.0, "cam1", None))
    tricky = json.dumps({**json.loads(stored_event), "data": {"site_id": "nested"}})  # the slow path
    for kind, stored in (("event", stored_event), ("occupancy", stored_occupancy), ("event", tricky)):
        fast = json.loads(finish_text(stored, kind, "s", "g", 9.0, True))
        assert fast == finish(json.loads(stored), kind, "s", "g", 9.0, True)
        validate(kind, fast)
