"""PJLink projectors through the whole gateway: status polls, commands, refused auth, silence."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from firmware_bridge.pjlink.simulator import SimulatedProjector
from tests.conftest import Mosquitto
from tests.gateway_harness import gateway_config_path, running_gateway, watching


def projector_device(device_id: str, port: int, **extra: object) -> dict[str, object]:
    return {"id": device_id, "type": "pjlink", "room_id": "r1", "host": "127.0.0.1", "port": port,
            "password_env": "PJLINK_TEST_PASSWORD", "poll_s": 0.3, "timeout_s": 0.5,
            "missed_polls": 2, **extra}


async def test_projector_status_commands_and_faults(tmp_path: Path, mosquitto: Mosquitto,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PJLINK_TEST_PASSWORD", "JBMIAProjectorLink")
    good = SimulatedProjector("JBMIAProjectorLink", warm_up_s=0.2, cool_down_s=0.2,
                              lamp_hours=1234)
    refusing = SimulatedProjector("JBMIAProjectorLink")
    refusing.refuse_auth = True
    silent = SimulatedProjector("JBMIAProjectorLink")
    silent.silent = True
    ports = [await p.start() for p in (good, refusing, silent)]
    devices = [projector_device("proj1", ports[0]), projector_device("proj-refusing", ports[1]),
               projector_device("proj-silent", ports[2])]
    prefix = f"t/{tmp_path.name}"
    path = gateway_config_path(tmp_path, mosquitto, devices)
    try:
        async with watching(mosquitto, f"{prefix}/#") as mqtt, running_gateway(path):
            await mqtt.wait_json(f"{prefix}/device/proj1/status", lambda b: b["online"])
            lamp = await mqtt.wait_json(f"{prefix}/reading/proj1/lamp_hours")
            assert lamp["value"] == 1234 and lamp["unit"] == "h"
            await mqtt.wait_json(f"{prefix}/reading/proj1/power", lambda b: b["value"] == 0)

            await mqtt.client.publish(f"{prefix}/device/proj1/cmd", json.dumps(
                {"command_id": "p1", "action": "power", "args": {"state": "on"}}).encode(), qos=1)
            result = await mqtt.wait_json(f"{prefix}/device/proj1/cmd/result")
            assert result["status"] == "ok", result
            await mqtt.wait_json(f"{prefix}/reading/proj1/power", lambda b: b["value"] == 1)
            await asyncio.sleep(0.3)  # warmed up: inputs can be chosen now
            await mqtt.client.publish(f"{prefix}/device/proj1/cmd", json.dumps(
                {"command_id": "p2", "action": "input", "args": {"source": "32"}}).encode(), qos=1)
            result = await mqtt.wait_json(f"{prefix}/device/proj1/cmd/result",
                                          lambda b: b["command_id"] == "p2")
            assert result["status"] == "ok" and good.input == "32"
            await mqtt.client.publish(f"{prefix}/device/proj1/cmd", json.dumps(
                {"command_id": "p3", "action": "input", "args": {"source": "99"}}).encode(), qos=1)
            bad = await mqtt.wait_json(f"{prefix}/device/proj1/cmd/result",
                                       lambda b: b["command_id"] == "p3")
            assert bad["status"] == "rejected" and "args.source" in bad["reason"]

            refused = await mqtt.wait_json(f"{prefix}/device/proj-refusing/status",
                                           lambda b: not b["online"])
            assert refused["detail"] == "authentication refused"
            gone = await mqtt.wait_json(f"{prefix}/device/proj-silent/status",
                                        lambda b: not b["online"])
            assert "no greeting within 0.5s" in gone["detail"], gone
            await mqtt.client.publish(f"{prefix}/device/proj-silent/cmd", json.dumps(
                {"command_id": "p4", "action": "power", "args": {"state": "off"}}).encode(), qos=1)
            result = await mqtt.wait_json(f"{prefix}/device/proj-silent/cmd/result")
            assert result["status"] == "timeout"
            await mqtt.client.publish(f"{prefix}/device/proj-refusing/cmd", json.dumps(
                {"command_id": "p5", "action": "power", "args": {"state": "on"}}).encode(), qos=1)
            result = await mqtt.wait_json(f"{prefix}/device/proj-refusing/cmd/result")
            assert result["status"] == "failed" and "authentication" in result["reason"]
            # The good projector kept being polled meanwhile.
            await mqtt.wait_json(f"{prefix}/reading/proj1/power", lambda b: b["value"] == 1)
    finally:
        for projector in (good, refusing, silent):
            await projector.stop()


async def test_projector_source_works_again_after_a_restart() -> None:
    from edge.bus import Bus
    from edge.clock import SystemClock
    from edge.config_devices import PjlinkDeviceConfig
    from edge.sources.projectors import ProjectorSource

    projector = SimulatedProjector(lamp_hours=10)
    port = await projector.start()
    config = PjlinkDeviceConfig.model_validate(
        {"id": "p", "type": "pjlink", "room_id": "r1", "host": "127.0.0.1", "port": port,
         "poll_s": 0.1, "timeout_s": 1})
    source = ProjectorSource(config, None, Bus(), SystemClock())
    try:
        for _ in range(2):  # what the supervisor does after a crash: run the same object again
            task = asyncio.create_task(source.run(lambda: None))
            async with asyncio.timeout(5):
                while source.last_status is None:
                    await asyncio.sleep(0.02)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert source.failures == 0 and source.availability.online is True
            source.last_status = None
    finally:
        await projector.stop()


def test_projector_host_is_validated() -> None:
    from pydantic import ValidationError

    from edge.config_devices import PjlinkDeviceConfig

    base = {"id": "p", "type": "pjlink", "room_id": "r1"}
    assert PjlinkDeviceConfig.model_validate({**base, "host": "[2001:db8::5]"}).host == "2001:db8::5"
    assert PjlinkDeviceConfig.model_validate({**base, "host": "proj-101.school.lan"}).host
    for bad in ("a..b", "-x", "", "host name"):
        with pytest.raises(ValidationError):
            PjlinkDeviceConfig.model_validate({**base, "host": bad})


async def test_a_retained_command_is_ignored_and_never_runs_on_reconnect(
        tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PJLINK_TEST_PASSWORD", "JBMIAProjectorLink")
    projector = SimulatedProjector("JBMIAProjectorLink", warm_up_s=0.2, cool_down_s=0.2)
    port = await projector.start()
    prefix = f"t/{tmp_path.name}"
    path = gateway_config_path(tmp_path, mosquitto, [projector_device("proj1", port)])
    try:
        async with watching(mosquitto, f"{prefix}/#") as mqtt:
            # Left retained on the broker by a careless dashboard, before the gateway starts.
            await mqtt.client.publish(f"{prefix}/device/proj1/cmd", json.dumps(
                {"command_id": "kept", "action": "power", "args": {"state": "on"}}).encode(), qos=1,
                retain=True)
            async with running_gateway(path) as gateway:
                await mqtt.wait_json(f"{prefix}/device/proj1/status", lambda b: b["online"])
                await mqtt.wait_json(f"{prefix}/reading/proj1/power", lambda b: b["value"] == 0)
                assert gateway.link is not None and gateway.link.stats.rejected >= 1
                # A live command still runs, and its result is the only one published.
                await mqtt.client.publish(f"{prefix}/device/proj1/cmd", json.dumps(
                    {"command_id": "live", "action": "power", "args": {"state": "on"}}).encode(), qos=1)
                result = await mqtt.wait_json(f"{prefix}/device/proj1/cmd/result")
                assert result["command_id"] == "live" and result["status"] == "ok", result
            await mqtt.client.publish(f"{prefix}/device/proj1/cmd", b"", qos=1, retain=True)  # clean up
    finally:
        await projector.stop()
