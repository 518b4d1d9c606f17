"""mTLS between the app and the Agent Server, beside the service JWT (docs/compliance.md, `# mTLS`).

The server serves HTTPS and requires a client certificate signed by its configured CA. A throwaway CA
and certificates are made here: a caller without a certificate, or with one from a foreign CA, is refused
at the TLS handshake (no HTTP exchange happens); a valid certificate completes it, and the JWT is still
required on top; the app's own server client (built from its settings) presents its certificate and works.
"""

from __future__ import annotations

import socket
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cogni_app.config import AppSettings
from cogni_app.deletion import ServerPurgeClient, ServerPurgeFailed
from cogni_app.executors import LangGraphServerProvider
from cogni_app.service_auth import ServiceTokenMinter
from cogni_app.wiring import server_tls
from testsupport import ManagedProcess, free_port, fresh_database
from testsupport.certs import CertificateAuthority, Issued

pytestmark = [pytest.mark.stack, pytest.mark.integration]
SECRET = "mtls-jwt-" + "m" * 40
OPERATOR = "mtls-operator-" + "o" * 32
HANDSHAKE_REFUSED = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


@dataclass
class TlsServer:
    url: str
    ca: Path
    app: Issued
    foreign: Issued


def context(ca: Path, client: Issued | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    tmp = tmp_path_factory.mktemp("mtls")
    ca, foreign_ca = CertificateAuthority("cogni test CA"), CertificateAuthority("someone else's CA")
    ca_path = ca.write(tmp / "ca.pem")
    server_cert = ca.issue(tmp, "agent-server", server=True)
    app_cert = ca.issue(tmp, "cogni-app")
    foreign = foreign_ca.issue(tmp, "intruder")
    with fresh_database("cogni_mtls") as db:
        port = free_port()
        server = ManagedProcess(
            [sys.executable, "-m", "cogni_server", "serve", "--config", "packages/graphs/langgraph.json",
             "--port", str(port)],
            env={"LANGGRAPH_DATABASE_URL": db, "COGNI_AUTH_MODE": "jwt", "COGNI_JWT_SECRET": SECRET,
                 "COGNI_JWT_AUDIENCE": "cogni-agent-server", "COGNI_TLS_CERTFILE": str(server_cert.cert),
                 "COGNI_TLS_KEYFILE": str(server_cert.key), "COGNI_TLS_CLIENT_CA": str(ca_path),
                 "LITELLM_BASE_URL": "http://127.0.0.1:9", "LITELLM_API_KEY": "unused",
                 "COGNI_OPERATOR_TOKEN": OPERATOR},
            name="agent-server-mtls",
        )  # fmt: skip
        url = f"https://127.0.0.1:{port}"
        try:
            with httpx.Client(verify=context(ca_path, app_cert), timeout=2.0) as probe:
                for _ in range(300):
                    try:
                        if probe.get(f"{url}/ok").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.2)
                else:
                    raise TimeoutError(f"the TLS server did not answer:\n{server.output()[-3000:]}")
            yield TlsServer(url=url, ca=ca_path, app=app_cert, foreign=foreign)
        finally:
            server.stop()


def handshake(tls: TlsServer, client: Issued | None) -> str:
    """A TLS 1.2 handshake on a raw socket (no HTTP): the TLS version when it completes, the SSL error when the
    server refuses it. (In TLS 1.2 the server checks the client's certificate inside the handshake; in 1.3 the
    client's side may finish before the server's check, so the refusal shows as a closed connection.)"""
    ctx = context(tls.ca, client)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    port = int(tls.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                return str(conn.version())
        except ssl.SSLError as exc:
            return f"refused: {exc}"


def tls13_answer(tls: TlsServer, client: Issued | None) -> bytes:
    """What an HTTP request over TLS 1.3 gets back: nothing, when the server refused the certificate."""
    port = int(tls.url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context(tls.ca, client).wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        conn.sendall(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        try:
            return conn.recv(1024)
        except ssl.SSLError:
            return b""


def no_http_answer(tls: TlsServer, client: Issued | None) -> None:
    with httpx.Client(verify=context(tls.ca, client), timeout=5.0) as http, pytest.raises(HANDSHAKE_REFUSED):
        http.get(f"{tls.url}/ok")


def test_a_caller_without_a_certificate_is_refused_at_the_handshake(tls_server: TlsServer) -> None:
    assert handshake(tls_server, None).startswith("refused: ")
    assert tls13_answer(tls_server, None) == b""
    no_http_answer(tls_server, None)


def test_a_certificate_from_a_foreign_ca_is_refused_at_the_handshake(tls_server: TlsServer) -> None:
    assert handshake(tls_server, tls_server.foreign).startswith("refused: ")
    assert tls13_answer(tls_server, tls_server.foreign) == b""
    no_http_answer(tls_server, tls_server.foreign)


def test_plain_http_gets_no_answer(tls_server: TlsServer) -> None:
    with httpx.Client(timeout=5.0) as http, pytest.raises(HANDSHAKE_REFUSED):
        http.get(tls_server.url.replace("https://", "http://") + "/ok")


def test_a_valid_certificate_completes_the_handshake_and_the_jwt_is_still_required(tls_server: TlsServer) -> None:
    assert handshake(tls_server, tls_server.app) == "TLSv1.2"
    assert tls13_answer(tls_server, tls_server.app).startswith(b"HTTP/1.1 200")
    token = ServiceTokenMinter(SECRET).mint("tenant-mtls")
    with httpx.Client(verify=context(tls_server.ca, tls_server.app), timeout=10.0) as http:
        assert http.get(f"{tls_server.url}/ok").status_code == 200
        assert http.post(f"{tls_server.url}/assistants/search", json={}).status_code == 401
        found = http.post(
            f"{tls_server.url}/assistants/search", json={"limit": 5}, headers={"Authorization": f"Bearer {token}"}
        )
        assert found.status_code == 200 and found.json(), found.text


async def test_the_apps_server_client_presents_its_certificate(tls_server: TlsServer) -> None:
    settings = AppSettings(
        database_url="postgresql://unused",
        langgraph_server_url=tls_server.url,
        cogni_executor="server",
        cogni_jwt_secret=SECRET,
        cogni_server_tls_ca=tls_server.ca,
        cogni_server_tls_cert=tls_server.app.cert,
        cogni_server_tls_key=tls_server.app.key,
    )  # type: ignore[call-arg]
    provider = LangGraphServerProvider(
        tls_server.url, tokens=ServiceTokenMinter(SECRET), ssl_context=server_tls(settings)
    )  # as cogni_app.wiring.build_executor builds it
    try:
        agents = await provider.list_agents(billing_account_id="tenant-mtls")
        assert "chat" in {a.name for a in agents}
    finally:
        await provider.aclose()
    # the data deletion's purge call goes the same way
    purge = ServerPurgeClient(tls_server.url, OPERATOR, ssl_context=server_tls(settings))
    try:
        assert (await purge.purge("tenant-mtls")).done
    finally:
        await purge.aclose()
    without_cert = ServerPurgeClient(tls_server.url, OPERATOR, ssl_context=context(tls_server.ca))
    try:
        with pytest.raises(ServerPurgeFailed, match="unreachable"):
            await without_cert.purge("tenant-mtls")
    finally:
        await without_cert.aclose()


def test_incomplete_tls_settings_fail_loudly(tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from cogni_server.config import Settings

    for var in ("COGNI_TLS_CERTFILE", "COGNI_TLS_KEYFILE", "COGNI_TLS_CLIENT_CA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COGNI_TLS_CLIENT_CA", str(tls_server.ca))
    with pytest.raises(ValidationError, match="COGNI_TLS_CLIENT_CA needs COGNI_TLS_CERTFILE"):
        Settings()
    monkeypatch.setenv("COGNI_TLS_CERTFILE", str(tls_server.app.cert))
    with pytest.raises(ValidationError, match="go together"):
        Settings()
    monkeypatch.setenv("COGNI_TLS_KEYFILE", "/nonexistent/key.pem")
    with pytest.raises(ValidationError, match="not a file"):
        Settings()
    with pytest.raises(ValidationError, match="COGNI_SERVER_TLS_CERT and COGNI_SERVER_TLS_KEY go together"):
        AppSettings(
            database_url="postgresql://unused", cogni_executor="inproc", cogni_server_tls_cert=tls_server.app.cert
        )  # type: ignore[call-arg]
