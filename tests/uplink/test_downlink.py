"""Signed platform commands on a real store and command service, with real Ed25519 keys."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edge.clock import ManualClock
from edge.command_args import ACTIONS, Args
from edge.commands import CommandService
from edge.config_uplink import AllowRule, CommandsConfig
from edge.errors import KeyUnusable
from edge.store import Store
from edge.uplink.downlink import Downlink
from edge.uplink.signature import canonical, load_public_key, sign, verify

NOW = 1_800_000_000.0


class LampArgs(Args):
    """Arguments of the fake lamp's only action."""

    level: int


class Lamp:
    """Executor of a fake device type: counts the calls it carried out."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Args]] = []

    async def __call__(self, action: str, args: Args) -> dict[str, Any]:
        self.calls.append((action, args))
        return {"level": getattr(args, "level", None)}


@dataclass
class Rig:
    """A downlink wired to a real store and command service."""

    downlink: Downlink
    store: Store
    clock: ManualClock
    key: Ed25519PrivateKey
    lamp: Lamp
    resends: list[float] = field(default_factory=list)

    def message(self, **changes: Any) -> dict[str, Any]:
        """An unsigned command to the lamp, valid now, with changes applied."""
        body = {"command_id": "c-1", "device_id": "lamp1", "action": "set", "args": {"level": 40},
                "issued_at": self.clock.now() - 1, "expires_at": self.clock.now() + 60}
        return {**body, **changes}

    def signed(self, **changes: Any) -> bytes:
        """A signed command, as bytes on the wire."""
        return json.dumps(sign(self.key, self.message(**changes))).encode()

    async def audits(self) -> list[dict[str, Any]]:
        """Every audit record, oldest first."""
        return list(reversed(await self.store.audit_page(1000)))


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    monkeypatch.setitem(ACTIONS, "lamp", {"set": LampArgs, "blink": LampArgs})
    clock = ManualClock(NOW)
    store = await Store.open(tmp_path, clock)
    service, lamp = CommandService(store, clock), Lamp()
    service.register("lamp1", "lamp", lamp)
    key = Ed25519PrivateKey.generate()
    config = CommandsConfig(enabled=True, public_key_file=tmp_path / "unused.pem", allow=[
        AllowRule(devices=["*"], actions=["set"]),
        AllowRule(devices=["gateway"], actions=["*"])])
    resends: list[float] = []

    async def resend_status() -> None:
        resends.append(clock.now())

    downlink = Downlink(config, key.public_key(), service, clock, {"lamp1"}, store=store,
                        config_version="sha256:abc", resend_status=resend_status)
    yield Rig(downlink, store, clock, key, lamp, resends)
    await store.close()


async def test_a_good_command_runs_once_and_a_resend_gets_the_earlier_result(rig: Rig) -> None:
    payload = rig.signed()
    first = await rig.downlink.handle(payload)
    assert first == {"command_id": "c-1", "device_id": "lamp1", "action": "set", "status": "ok",
                     "reason": "", "detail": {"level": 40}, "duplicate": False, "finished_at": NOW}
    rig.clock.advance(5)
    again = await rig.downlink.handle(payload)
    assert again == {**first, "duplicate": True}  # the earlier finished_at, not now
    assert len(rig.lamp.calls) == 1
    actions = [(a["actor"], a["action"]) for a in await rig.audits()]
    assert actions == [("platform", "command.received"), ("platform", "command.finished")]


async def test_an_expired_resend_of_a_command_that_ran_still_gets_its_result(rig: Rig) -> None:
    payload = rig.signed()
    first = await rig.downlink.handle(payload)
    rig.clock.advance(3600)  # long past expires_at
    again = await rig.downlink.handle(payload)
    assert again == {**first, "duplicate": True} and len(rig.lamp.calls) == 1


async def test_an_expired_unseen_command_is_refused_and_its_id_spent(rig: Rig) -> None:
    payload = rig.signed(issued_at=NOW - 120, expires_at=NOW - 60)
    first = await rig.downlink.handle(payload)
    assert (first["status"], first["reason"], first["duplicate"]) == ("rejected", "command expired 60s ago",
                                                                      False)
    again = await rig.downlink.handle(payload)
    assert again == {**first, "duplicate": True}
    # A fresh message reusing the spent id is not run either.
    reuse = await rig.downlink.handle(rig.signed())
    assert reuse["duplicate"] is True and reuse["status"] == "rejected" and rig.lamp.calls == []


def _tampered(rig: Rig) -> bytes:
    message = sign(rig.key, rig.message())
    return json.dumps({**message, "args": {"level": 100}}).encode()


def _other_key(rig: Rig) -> bytes:
    return json.dumps(sign(Ed25519PrivateKey.generate(), rig.message())).encode()


@pytest.mark.parametrize(("build", "command_id", "reason"), [
    (_tampered, "c-1", "bad signature"),
    (_other_key, "c-1", "bad signature"),
    (lambda r: json.dumps(r.message()).encode(), "c-1", "missing signature"),
    (lambda r: json.dumps({**r.message(), "signature": "not base64!"}).encode(), "c-1", "bad signature"),
    (lambda r: r.signed(issued_at=NOW + 300, expires_at=NOW + 400), "c-1", "issued_at is 300s in the future"),
    (lambda r: r.signed(expires_at=NOW - 1), "c-1", "expires_at must be after issued_at"),
    (lambda r: r.signed(device_id="lamp9"), "c-1", "unknown device 'lamp9'"),
    (lambda r: r.signed(action="blink"), "c-1", "action 'blink' on 'lamp1' is not allowed"),
    (lambda r: r.signed(args={"level": "40"}), "c-1", "args.level"),  # submit validates args
    (lambda r: r.signed(command_id=""), "", "command_id must be a string of 1-128 characters"),
    (lambda r: r.signed(command_id="x" * 129), "", "command_id must be a string of 1-128"),
    (lambda r: r.signed(action=7), "c-1", "action must be a string"),
    (lambda r: r.signed(args=[1]), "c-1", "args must be a JSON object"),
    (lambda r: r.signed(issued_at="now"), "c-1", "issued_at must be a number"),
    (lambda r: r.signed(expires_at=True), "c-1", "expires_at must be a number"),
    (lambda r: r.signed(when=1), "c-1", "unknown keys: when"),
    (lambda r: r.signed(schema="campus/v2/cmd"), "c-1", "schema must be 'campus/v1/cmd'"),
    (lambda r: json.dumps({k: v for k, v in r.message().items() if k != "expires_at"}).encode(), "c-1",
     "expires_at must be a number"),
    (lambda r: b'{"command_id": "c-1", "device_id": ', "", "payload is not JSON"),
    (lambda r: b'{"command_id": "c-1", "issued_at": NaN}', "", "NaN is not a number"),
    (lambda r: b'["c-1"]', "", "payload must be a JSON object, not list"),
    (lambda r: b'"\xff\xfe"', "", "payload is not UTF-8"),
    (lambda r: b"[" * 8000 + b"]" * 8000, "", "payload is not JSON"),  # too deep: no crash
])
async def test_refusals_carry_a_reason_and_are_audited(rig: Rig, build: Any, command_id: str,
                                                        reason: str) -> None:
    result = await rig.downlink.handle(build(rig))
    assert result["status"] == "rejected" and result["command_id"] == command_id
    assert reason in result["reason"]
    assert rig.lamp.calls == []
    audits = await rig.audits()
    assert [(a["actor"], a["action"], a["detail"]["reason"]) for a in audits] == [
        ("platform", "command.rejected", result["reason"])]


async def test_a_megabyte_payload_is_refused_unread_and_fast(rig: Rig) -> None:
    payload = rig.signed(args={"level": 40, "pad": "x" * 1_048_576})
    started = time.perf_counter()
    result = await rig.downlink.handle(payload)
    assert time.perf_counter() - started < 0.5
    # Unread: the command_id inside is not even echoed.
    assert (result["status"], result["command_id"]) == ("rejected", "")
    assert result["reason"] == f"payload of {len(payload)} bytes exceeds 16384"
    assert [a["action"] for a in await rig.audits()] == ["command.rejected"]


async def test_gateway_commands(rig: Rig) -> None:
    def gateway(command_id: str, action: str) -> bytes:
        return rig.signed(command_id=command_id, device_id="gateway", action=action, args={})

    ping = await rig.downlink.handle(gateway("g-1", "ping"))
    assert (ping["status"], ping["detail"]) == ("ok", {"pong": True, "time": NOW})
    version = await rig.downlink.handle(gateway("g-2", "config_version"))
    assert version["detail"] == {"config_version": "sha256:abc"}
    resent = await rig.downlink.handle(gateway("g-3", "resend_status"))
    assert resent["detail"] == {"resent": True} and rig.resends == [NOW]
    unknown = await rig.downlink.handle(gateway("g-4", "reboot"))
    assert unknown["status"] == "rejected" and "unknown action 'reboot'" in unknown["reason"]
    extra = await rig.downlink.handle(rig.signed(command_id="g-5", device_id="gateway", action="ping",
                                                 args={"now": 1}))
    assert extra["status"] == "rejected" and "args.now" in extra["reason"]


async def test_a_device_wildcard_does_not_cover_the_gateway(rig: Rig, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    store = await Store.open(tmp_path / "other", rig.clock)
    try:
        service = CommandService(store, rig.clock)
        config = CommandsConfig(enabled=True, public_key_file=tmp_path / "k",
                                allow=[AllowRule(devices=["*"], actions=["*"])])

        async def nothing() -> None:
            return None

        downlink = Downlink(config, rig.key.public_key(), service, rig.clock, set(), store=store,
                            config_version="v", resend_status=nothing)
        result = await downlink.handle(rig.signed(device_id="gateway", action="ping", args={}))
        assert result["status"] == "rejected" and "not allowed" in result["reason"]
    finally:
        await store.close()


def test_signatures_cover_every_key_but_the_signature() -> None:
    key = Ed25519PrivateKey.generate()
    message = sign(key, {"b": 1, "a": "é"})
    assert canonical(message) == '{"a":"é","b":1}'.encode()
    assert len(base64.b64decode(message["signature"], validate=True)) == 64
    assert verify(key.public_key(), message)
    assert not verify(key.public_key(), {**message, "b": 2})
    assert not verify(key.public_key(), {**message, "signature": message["signature"][:-4]})
    assert not verify(key.public_key(), {"b": 1, "a": "é"})


def test_public_keys_load_from_pem_and_from_raw_base64(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    message = sign(key, {"x": 1})
    pem = tmp_path / "platform.pem"
    pem.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    raw = tmp_path / "platform.b64"
    raw.write_text(base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
                   + "\n")
    assert verify(load_public_key(pem), message) and verify(load_public_key(raw), message)


@pytest.mark.parametrize(("content", "reason"), [
    (b"garbage, not a key\n", "neither PEM nor base64"),
    (base64.b64encode(b"\x01" * 31), "decodes to 31 bytes"),
    (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a readable PEM public key"),
    (Ed448PrivateKey.generate().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
     "not an Ed25519 public key"),
    (b"A" * 70_000, "larger than"),
])
def test_unusable_key_files_raise_a_clear_error(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(KeyUnusable, match=reason) as err:
        load_public_key(path)
    assert str(path) in str(err.value)


def test_a_missing_key_file_raises_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyUnusable, match="cannot read"):
        load_public_key(tmp_path / "absent.pem")
