"""Broker checks: TLS (certificates, host name) and a real MQTT CONNECT with the configured login."""

from __future__ import annotations

import os
import socket
import ssl
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import EdgeConfig
from edge.doctor.certs import der_not_after, expiry_line, file_expiry_line
from edge.doctor.report import FAIL, PASS, Line
from edge.errors import SecretUnavailable
from edge.mqtt.values import BrokerEndpoint
from edge.mqtt.wire import tls_context
from edge.uplink.build import endpoint_of

# OpenSSL's X509_V_ERR_* codes the installer can act on.
_CERT_EXPIRED = 10
_HOSTNAME_MISMATCH = 62


def local_broker(config: EdgeConfig, timeout_s: float) -> list[Line]:
    """The local broker: embedded, or a real one reached like the daemon does."""
    local = config.mqtt.local
    if local.url == "embedded":
        return [Line(PASS, "local broker", "embedded: started by the daemon itself, nothing to reach")]
    try:
        password = local.resolve_password("mqtt.local")
    except SecretUnavailable as err:
        return [Line(FAIL, "local broker", str(err))]
    endpoint = BrokerEndpoint(*local.broker_address(), *local.tls_paths(), username=local.username,
                              password=password)
    return broker_lines("local broker", endpoint, timeout_s, v5=False)


def central_broker(config: EdgeConfig, timeout_s: float) -> list[Line]:
    """The central campus broker of config.uplink, if one is configured."""
    uplink = config.uplink
    if uplink is None:
        return [Line(PASS, "central broker", "no uplink configured: everything stays on the box")]
    if not uplink.enabled:
        return [Line(PASS, "central broker", "uplink disabled (uplink.enabled: false); not checked")]
    try:
        password = uplink.resolve_password("uplink")
    except SecretUnavailable as err:
        return [Line(FAIL, "central broker", str(err))]
    endpoint = endpoint_of(uplink, password)
    return broker_lines("central broker", endpoint, timeout_s, v5=uplink.protocol == "5")


def broker_lines(check: str, endpoint: BrokerEndpoint, timeout_s: float, v5: bool) -> list[Line]:
    """TLS certificate lines (when TLS is used), then the outcome of an MQTT CONNECT."""
    lines: list[Line] = []
    where = endpoint.describe()
    if endpoint.use_tls:
        for label, path in (("CA file", endpoint.ca_file), ("client key", endpoint.key_file)):
            if path and not os.access(path, os.R_OK):
                lines.append(Line(FAIL, check, f"{label} {path} is missing or not readable by this user"))
        if endpoint.cert_file:
            cert = Path(endpoint.cert_file)
            lines.append(file_expiry_line(f"{check} client cert", "client certificate", cert))
        if any(line.status == FAIL for line in lines):
            return lines
        tls_line = _tls_probe(check, endpoint, timeout_s)
        lines.append(tls_line)
        if tls_line.status == FAIL:
            return lines
    lines.append(_connect(check, endpoint, where, timeout_s, v5))
    return lines


def _unreachable(check: str, where: str, err: OSError) -> Line:
    if isinstance(err, ConnectionRefusedError):
        reason = "connection refused (nothing listens there: is the broker running?)"
    elif isinstance(err, TimeoutError | socket.timeout):
        reason = "no answer (a firewall, a wrong address or the network is down)"
    elif isinstance(err, socket.gaierror):
        reason = f"host name not resolved ({err.strerror})"
    else:
        reason = err.strerror or str(err)
    return Line(FAIL, check, f"{where} unreachable: {reason}")


def _tls_probe(check: str, endpoint: BrokerEndpoint, timeout_s: float) -> Line:
    """Handshake like the daemon does and look at the certificate the broker presents."""
    try:
        context = tls_context(endpoint)
    except (OSError, ssl.SSLError) as err:
        return Line(FAIL, f"{check} TLS", f"cannot load the TLS files: {err}")
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s) as raw, \
                context.wrap_socket(raw, server_hostname=endpoint.host) as tls:
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as err:
        if err.verify_code == _CERT_EXPIRED:
            return Line(FAIL, f"{check} TLS", "the broker's certificate has expired: renew it on the broker")
        if err.verify_code == _HOSTNAME_MISMATCH:
            return Line(FAIL, f"{check} TLS", f"the broker's certificate is not valid for {endpoint.host!r}: "
                                              "use the name in its certificate, or reissue it")
        return Line(FAIL, f"{check} TLS", f"the broker's certificate is not trusted: {err.verify_message} "
                                          "(is ca_file the CA that signed it?)")
    except ssl.SSLError as err:
        return Line(FAIL, f"{check} TLS", f"TLS handshake failed: {err.reason or err}")
    except OSError as err:
        return _unreachable(check, endpoint.describe(), err)
    if not der:
        return Line(FAIL, f"{check} TLS", "the broker presented no certificate")
    return expiry_line(f"{check} TLS", "broker certificate", der_not_after(der))


def _connect(check: str, endpoint: BrokerEndpoint, where: str, timeout_s: float, v5: bool) -> Line:
    protocol = paho.MQTTv5 if v5 else paho.MQTTv311
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-doctor-{os.getpid()}",
                         protocol=protocol)
    client.connect_timeout = timeout_s
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.use_tls:
        client.tls_set_context(tls_context(endpoint))
    answer: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: answer.append(reason)
    try:
        client.connect(endpoint.host, endpoint.port, keepalive=max(5, round(timeout_s * 2)))
    except ssl.SSLError as err:
        return Line(FAIL, check, f"TLS handshake with {where} failed: {err}")
    except OSError as err:
        return _unreachable(check, where, err)
    try:
        deadline = time.monotonic() + timeout_s
        while not answer and time.monotonic() < deadline:
            # The refusing CONNACK and the broker's close can arrive in one loop: answer first.
            if client.loop(timeout=0.1) != paho.MQTT_ERR_SUCCESS and not answer:
                return Line(FAIL, check, f"{where} closed the connection before answering "
                                         "(client certificate refused, or not an MQTT broker?)")
        if not answer:
            return Line(FAIL, check, f"{where} accepted TCP but sent no CONNACK within {timeout_s:g}s")
        reason = answer[0]
        if not reason.is_failure:
            who = f"as {endpoint.username!r}" if endpoint.username else "anonymously"
            return Line(PASS, check, f"connected to {where} {who}")
        if reason.value in (4, 5, 134, 135):  # bad user name or password / not authorised (3.1.1, 5)
            return Line(FAIL, check, f"{where} refused the login (authentication failed: {reason}); "
                                     "check username and password_file/password_env")
        return Line(FAIL, check, f"{where} refused the connection: {reason}")
    finally:
        client.disconnect()
        client.loop(timeout=0.1)
