"""The console over real sockets: HTTPS with the installer's cert and key, IPv6 and dual-stack."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from edge.config_loader import parse_config_text
from edge.console import ConsoleServer
from edge.console.server import ConsoleServerFailed
from edge.errors import ConfigError
from tests.console.harness import PASSWORD, running_console
from tests.tls_certs import make_certs


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")


@asynccontextmanager
async def serving(server: ConsoleServer) -> AsyncIterator[int]:
    """Run the console server until the block ends; yield its bound port."""
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready.set))
    try:
        async with asyncio.timeout(5):
            await ready.wait()
        assert server.bound_port is not None
        yield server.bound_port
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_https_serves_the_console_and_the_cookie_is_secure(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    # edge.app passes secure_cookies=True whenever the console has TLS files.
    async with running_console(tmp_path, secure_cookies=True) as console:
        server = ConsoleServer(console.app, "127.0.0.1", 0, tls_cert_file=certs.server_cert,
                               tls_key_file=certs.server_key)
        async with serving(server) as port:
            assert server.url == f"https://127.0.0.1:{port}/"
            trust = ssl.create_default_context(cafile=str(certs.ca))
            async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=trust) as client:
                health = await client.get("/api/health")
                assert health.status_code == 200 and health.json() == {"status": "ok"}
                response = await client.post("/api/login", json={"username": "sam", "password": PASSWORD})
                assert response.status_code == 200
                assert "; secure" in response.headers["set-cookie"].lower()
                assert (await client.get("/api/me")).json()["username"] == "sam"  # the cookie came back
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as plain:
                with pytest.raises(httpx.HTTPError):
                    await plain.get("/api/health")


async def test_missing_or_bad_tls_files_fail_the_service_clearly(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    async with running_console(tmp_path) as console:
        cases = [(tmp_path / "absent.pem", certs.server_key, "absent.pem cannot be read"),
                 (certs.server_cert, tmp_path / "absent.key", "key " + str(tmp_path / "absent.key")),
                 (garbage, certs.server_key, "cannot be used"),
                 (certs.server_cert, certs.client_key, "cannot be used")]  # a key of another cert
        for cert, key, message in cases:
            server = ConsoleServer(console.app, "127.0.0.1", 0, tls_cert_file=cert, tls_key_file=key)
            with pytest.raises(ConsoleServerFailed, match=message.replace(".", r"\.")):
                await server.run(lambda: None)
            assert server.bound_port is None  # refused before any socket was bound


def test_tls_config_needs_cert_and_key_together() -> None:
    base = "site_id: s\ngateway_id: g\nconsole:\n  tls_cert_file: /etc/edge/console.crt\n"
    with pytest.raises(ConfigError) as err:
        parse_config_text(base, "edge.yaml")
    (problem,) = err.value.problems
    assert problem.path == "console.tls_key_file" and "set together" in problem.message
    config = parse_config_text(base + "  tls_key_file: /etc/edge/console.key\n", "edge.yaml")
    assert config.console.tls and str(config.console.tls_key_file) == "/etc/edge/console.key"
    assert not parse_config_text("site_id: s\ngateway_id: g\n", "edge.yaml").console.tls


@needs_ipv6
async def test_ipv6_loopback_only(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console:
        server = ConsoleServer(console.app, "[::1]", 0)
        assert server.host == "::1"
        async with serving(server) as port:
            assert server.url == f"http://[::1]:{port}/"
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"http://[::1]:{port}/api/health")).status_code == 200
                with pytest.raises(httpx.ConnectError):  # '::1' is IPv6 only
                    await client.get(f"http://127.0.0.1:{port}/api/health")


@needs_ipv6
async def test_any_ipv6_address_is_dual_stack(tmp_path: Path) -> None:
    if not socket.has_dualstack_ipv6():
        pytest.skip("this machine's IPv6 sockets cannot also take IPv4")
    async with running_console(tmp_path) as console:
        server = ConsoleServer(console.app, "::", 0)
        async with serving(server) as port, httpx.AsyncClient() as client:
            assert server.url == f"http://[::]:{port}/"
            for base in (f"http://[::1]:{port}", f"http://127.0.0.1:{port}"):
                assert (await client.get(f"{base}/api/health")).status_code == 200, base


def test_accepted_connections_send_without_nagle_delay() -> None:
    # Without TCP_NODELAY every response on a kept-alive connection waited ~40 ms for a
    # delayed ACK (scripts/bench_console.py found it); Linux passes the option to accepted sockets.
    from edge.console.server import listen

    server = listen("127.0.0.1", 0)
    try:
        client = socket.create_connection(server.getsockname()[:2])
        accepted, _ = server.accept()
        try:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            accepted.close()
            client.close()
    finally:
        server.close()
