"""TLS: the client connects to a server that speaks only TLS, checking its certificate against a CA
file; mutual TLS with and without a client certificate. The CA, server and client certificates
are generated per run with the ``openssl`` CLI (no key is committed), and the server requires a
JWT (``JWT_SECRET``) as it would in production."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest

import syros
from conftest import Server, client_options, run_async

JWT_SECRET = "python-tls-test-secret-0123456789"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, text=True)


def _new_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))


def _signed_certificate(directory: Path, name: str, ca: Dict[str, Path], extensions: str) -> Dict[str, Path]:
    key, csr, cert, ext = (directory / f"{name}{suffix}" for suffix in (".key", ".csr", ".pem", ".ext"))
    _new_key(key)
    _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr))
    ext.write_text(extensions)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca["cert"]), "-CAkey", str(ca["key"]),
        "-CAcreateserial", "-days", "1", "-sha256", "-extfile", str(ext), "-out", str(cert),
    )
    return {"cert": cert, "key": key}


def _pki(directory: Path) -> Dict[str, Dict[str, Path]]:
    """A CA, a server certificate for localhost / 127.0.0.1 and a client certificate, all signed
    by that CA."""
    ca = {"cert": directory / "ca.pem", "key": directory / "ca.key"}
    _new_key(ca["key"])
    _openssl(
        "req", "-x509", "-new", "-key", str(ca["key"]), "-subj", "/CN=syros-test-ca", "-days", "1",
        "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", str(ca["cert"]),
    )
    end_entity = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    server = _signed_certificate(
        directory, "server", ca,
        end_entity + "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    client = _signed_certificate(directory, "client", ca, end_entity + "extendedKeyUsage=clientAuth\n")
    return {"ca": ca, "server": server, "client": client}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(subject: str = "python-tls", roles: tuple = ("admin",)) -> str:
    """An HS256 JWT signed with the server's ``JWT_SECRET``, valid for ten minutes."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = _b64(json.dumps({"sub": subject, "roles": list(roles), "exp": int(time.time()) + 600}).encode())
    signature = hmac.new(JWT_SECRET.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{_b64(signature)}"


#: Few quick attempts: a refused connection is not retried for long.
FEW_ATTEMPTS = syros.RetryPolicy(initial_interval=0.02, multiplier=2.0, max_interval=0.2, max_attempts=2, deadline=5.0)


def _options(**tls: object) -> dict:
    return {**client_options(), "retry": FEW_ATTEMPTS, "auth_token": _token(), **tls}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Dict[str, Path]]:
    return _pki(tmp_path_factory.mktemp("pki"))


def _tls_server(pki: Dict[str, Dict[str, Path]], mutual: bool) -> Server:
    env = {
        "TLS_CERT_FILE": str(pki["server"]["cert"]),
        "TLS_KEY_FILE": str(pki["server"]["key"]),
        "JWT_SECRET": JWT_SECRET,
    }
    if mutual:
        env["TLS_CLIENT_CA_FILE"] = str(pki["ca"]["cert"])
    return Server(env=env).start()


@pytest.fixture(scope="module")
def tls_server(pki: Dict[str, Dict[str, Path]]) -> Iterator[Server]:
    srv = _tls_server(pki, mutual=False)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def mtls_server(pki: Dict[str, Dict[str, Path]]) -> Iterator[Server]:
    srv = _tls_server(pki, mutual=True)
    yield srv
    srv.close()


def _lock_and_cache(client: syros.Client, key: str) -> None:
    with client.lock(key, ttl=5.0, wait=2.0) as lease:
        assert lease.fencing_token > 0
    client.cache.set(key, b"over tls")
    assert client.cache.get(key) == b"over tls"


def test_connects_over_tls_with_a_ca_file(tls_server: Server, pki: Dict[str, Dict[str, Path]], name: str) -> None:
    ca = pki["ca"]["cert"]
    # The address the launcher reports (127.0.0.1, an IP in the certificate), a path as str.
    with syros.Client(tls_server.address, **_options(tls_ca_file=str(ca))) as client:
        _lock_and_cache(client, f"{name}-ip")
    # An https:// address naming the host in the certificate, the CA as a pathlib.Path.
    https = f"https://localhost:{tls_server.port}"
    with syros.Client([https], **_options(tls_ca_file=ca)) as client:
        _lock_and_cache(client, f"{name}-https")
    # tls_server_name: the name the certificate must carry when the address does not say it.
    with syros.Client(tls_server.address, **_options(tls_ca_file=ca, tls_server_name="localhost")) as client:
        _lock_and_cache(client, f"{name}-named")

    async def main() -> None:
        async with syros.AsyncClient([tls_server.address], **_options(tls_ca_file=ca)) as client:
            async with client.lock(f"{name}-async", ttl=5.0, wait=2.0) as lease:
                assert lease.fencing_token > 0
            await client.cache.set(f"{name}-async", b"async over tls")
            assert (await client.cache.get(f"{name}-async")) == b"async over tls"

    run_async(main())


def test_a_client_without_the_ca_or_with_the_wrong_name_fails_clearly(
    tls_server: Server, pki: Dict[str, Dict[str, Path]], tmp_path: Path
) -> None:
    # Plaintext to a TLS port: the documented `unavailable: transport error`, not a hang.
    with pytest.raises(syros.Unavailable) as plaintext:
        syros.Client(tls_server.address, **_options())
    assert "transport error" in str(plaintext.value), plaintext.value
    # A CA that did not sign the server's certificate.
    other = _pki(tmp_path)
    with pytest.raises(syros.Unavailable):
        syros.Client(tls_server.address, **_options(tls_ca_file=other["ca"]["cert"]))
    # The right CA, but a name the certificate does not carry.
    with pytest.raises(syros.Unavailable):
        syros.Client(tls_server.address, **_options(tls_ca_file=pki["ca"]["cert"], tls_server_name="elsewhere"))


def test_tls_settings_are_checked(tls_server: Server, pki: Dict[str, Dict[str, Path]], tmp_path: Path) -> None:
    ca = pki["ca"]["cert"]
    with pytest.raises(syros.InvalidArgument, match="cannot read"):
        syros.Client(tls_server.address, **_options(tls_ca_file=tmp_path / "missing.pem"))
    with pytest.raises(syros.InvalidArgument, match="go together"):
        syros.Client(tls_server.address, **_options(tls_ca_file=ca, tls_client_cert_file=pki["client"]["cert"]))
    with pytest.raises(syros.InvalidArgument, match="need tls_ca_file"):
        syros.Client(tls_server.address, **_options(tls_server_name="localhost"))
    # Over TLS the server still authenticates: no token, no call.
    with syros.Client(tls_server.address, **{**_options(tls_ca_file=ca), "auth_token": None}) as anonymous:
        with pytest.raises(syros.Unauthenticated):
            anonymous.cache.get("never")


def test_mutual_tls_needs_a_client_certificate_signed_by_the_ca(
    mtls_server: Server, pki: Dict[str, Dict[str, Path]], name: str, tmp_path: Path
) -> None:
    ca = pki["ca"]["cert"]
    with pytest.raises(syros.Unavailable):
        syros.Client(mtls_server.address, **_options(tls_ca_file=ca))
    certificate = dict(tls_client_cert_file=pki["client"]["cert"], tls_client_key_file=pki["client"]["key"])
    with syros.Client(mtls_server.address, **_options(tls_ca_file=ca, **certificate)) as client:
        _lock_and_cache(client, f"{name}-mtls")
    # A client certificate signed by another CA is refused like none.
    other = _pki(tmp_path)["client"]
    foreign = dict(tls_client_cert_file=other["cert"], tls_client_key_file=other["key"])
    with pytest.raises(syros.Unavailable):
        syros.Client(mtls_server.address, **_options(tls_ca_file=ca, **foreign))

    async def main() -> None:
        async with syros.AsyncClient(mtls_server.address, **_options(tls_ca_file=ca, **certificate)) as client:
            await client.cache.set(f"{name}-mtls-async", b"1")
            assert (await client.cache.get(f"{name}-mtls-async")) == b"1"

    run_async(main())
