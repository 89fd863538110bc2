"""TLS on `gateway serve` (#17 §4): a real process, with certificates this suite makes (a CA, a server
certificate, client certificates), verified by the client against that CA.

Covers: a signed call over https (and the upstream told the proto was https), plain http on the TLS
port, mutual TLS with GATEWAY_TLS_CA_FILE (no client certificate, one of another CA, one of the CA),
an anonymous call with the curl binary over https, and every bad setting stopping start-up (exit 2,
one line naming the variable).
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import DATA
from tests.support.client import query, signed_params
from tests.support.serve import ROOT, Served, serve_env, until_ready
from tests.support.servers import free_port, serve_in_thread
from tests.support.upstream import Upstream

CURL = shutil.which("curl")
NOTICE = {"Action": "GetPublicNotice", "Version": "2014-05-26", "Format": "JSON"}


# --- certificates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(directory: Path, stem: str, subject: str, *, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
           | None = None, ca: bool = False, server: bool = False) -> tuple[Pem, x509.Certificate,
                                                                           ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    issuer_cert, issuer_key = issuer if issuer is not None else (None, key)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject))
               .issuer_name(issuer_cert.subject if issuer_cert is not None else _name(subject))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    pem = Pem(directory / f"{stem}.crt", directory / f"{stem}.key")
    pem.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return pem, cert, key


@dataclass(frozen=True)
class Pki:
    ca: Pem
    server: Pem
    client: Pem
    stranger: Pem  # a client certificate of another CA
    other_ca: Pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = _issue(directory, "ca", "gateway test CA", ca=True)
    server, _, _ = _issue(directory, "server", "localhost", issuer=(ca_cert, ca_key), server=True)
    client, _, _ = _issue(directory, "client", "a client", issuer=(ca_cert, ca_key))
    other_ca, other_cert, other_key = _issue(directory, "other-ca", "another CA", ca=True)
    stranger, _, _ = _issue(directory, "stranger", "a stranger", issuer=(other_cert, other_key))
    return Pki(ca, server, client, stranger, other_ca)


def _context(ca: Pem, client: Pem | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


# --- gateway serve over TLS ------------------------------------------------------------------------


@contextmanager
def _serve_tls(env: Mapping[str, str], ready_context: ssl.SSLContext, timeout: float = 20.0) -> Iterator[Served]:
    """`tests.support.serve.gateway_serve`, polled for readiness over https with ``ready_context``."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="gateway-tls-", suffix=".log")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--port", str(port)], cwd=ROOT,
                               env=dict(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    served = Served(process, f"https://127.0.0.1:{port}", log)
    try:
        with httpx.Client(timeout=1.0, verify=ready_context) as client:
            if not until_ready(client, process, served.url, time.monotonic() + timeout, served.output):
                raise RuntimeError(f"gateway serve exited with {process.returncode}:\n{served.output()}")
        yield served
    finally:
        if process.poll() is None:
            served.stop()
        log.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_in_thread(Upstream()) as url:
        yield url


def _env(pki: Pki, upstream: str, **extra: str) -> dict[str, str]:
    return serve_env(GATEWAY_CONFIG=str(DATA / "anonymous_policy.toml"), GATEWAY_UPSTREAM_URL=upstream,
                     GATEWAY_TLS_CERT_FILE=str(pki.server.cert), GATEWAY_TLS_KEY_FILE=str(pki.server.key), **extra)


@pytest.fixture(scope="module")
def tls(pki: Pki, upstream: str) -> Iterator[Served]:
    with _serve_tls(_env(pki, upstream), _context(pki.ca)) as served:
        yield served


@pytest.fixture(scope="module")
def mtls(pki: Pki, upstream: str) -> Iterator[Served]:
    with _serve_tls(_env(pki, upstream, GATEWAY_TLS_CA_FILE=str(pki.ca.cert)), _context(pki.ca, pki.client)) as served:
        yield served


def test_a_signed_call_over_https_verified_against_the_suites_ca(pki: Pki, tls: Served) -> None:
    with httpx.Client(verify=_context(pki.ca)) as client:
        answer = client.get(f"{tls.url}/echo?{query(signed_params('DescribeRegions'))}")
    assert answer.status_code == 200, answer.text
    headers = answer.json()["Headers"]
    # TLS ended here: the upstream is told the client's proto was https, in both header families.
    assert headers["x-forwarded-proto"] == ["https"]
    assert "proto=https" in headers["forwarded"][0]
    assert "tls: on (no client certificate asked for)" in tls.output()


def test_the_certificate_is_refused_by_a_client_trusting_another_ca(pki: Pki, tls: Served) -> None:
    with httpx.Client(verify=_context(pki.other_ca)) as client, pytest.raises(httpx.ConnectError) as caught:
        client.get(f"{tls.url}/_gateway/ready")
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


def test_plain_http_to_the_tls_port_gets_no_answer(pki: Pki, tls: Served) -> None:
    plain = tls.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/?{query(signed_params('DescribeRegions'))}", timeout=5)
    with httpx.Client(verify=_context(pki.ca)) as client:  # and the port still serves TLS
        assert client.get(f"{tls.url}/_gateway/ready").status_code == 200


@pytest.mark.skipif(CURL is None, reason="the curl binary is not installed")
def test_curl_calls_an_anonymous_api_over_https(pki: Pki, tls: Served) -> None:
    assert CURL is not None
    done = subprocess.run([CURL, "-s", "--cacert", str(pki.ca.cert), "-w", "\n%{http_code}",
                           f"{tls.url}/echo?{query(NOTICE)}"], capture_output=True, text=True, timeout=30, check=True)
    body, status = done.stdout.rsplit("\n", 1)
    assert status == "200", body
    assert '"x-gateway-anonymous": ["true"]' in body and '"x-forwarded-proto": ["https"]' in body


def _first_bytes(url: str, context: ssl.SSLContext) -> bytes | str:
    """What the server answers a request over a connection made with ``context``: the start of its
    answer, b"" when it closes without one, or the reason of a TLS alert it sends.

    Under TLS 1.3 the server judges the client certificate after the client's side of the handshake
    has ended, so a refusal shows on the first read, not on connect (asyncio closes without an alert).
    """
    host, port = url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as conn:
        try:
            conn.sendall(b"GET /_gateway/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return conn.recv(12)
        except ssl.SSLError as exc:
            return str(exc.reason)
        except ConnectionResetError:
            return b""


def test_mutual_tls_refuses_a_client_without_a_certificate_or_with_another_cas(pki: Pki, mtls: Served) -> None:
    assert _first_bytes(mtls.url, _context(pki.ca)) in (b"", "TLSV13_ALERT_CERTIFICATE_REQUIRED")
    assert _first_bytes(mtls.url, _context(pki.ca, pki.stranger)) in (b"", "TLSV1_ALERT_UNKNOWN_CA")
    assert _first_bytes(mtls.url, _context(pki.ca, pki.client)) == b"HTTP/1.1 200"
    assert "tls: on (client certificates required)" in mtls.output()


def test_mutual_tls_serves_a_client_with_a_certificate_of_the_ca(pki: Pki, mtls: Served) -> None:
    with httpx.Client(verify=_context(pki.ca, pki.client)) as client:
        answer = client.get(f"{mtls.url}/?{query(signed_params('DescribeRegions'))}")
    assert answer.status_code == 200, answer.text
    if CURL is not None:
        done = subprocess.run([CURL, "-s", "--cacert", str(pki.ca.cert), "--cert", str(pki.client.cert), "--key",
                               str(pki.client.key), "-o", "/dev/null", "-w", "%{http_code}",
                               f"{mtls.url}/?{query(NOTICE)}"], capture_output=True, text=True, timeout=30)
        assert done.stdout == "200"


# --- bad settings stop start-up ----------------------------------------------------------------------


def _junk(tmp_path: Path) -> Path:
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    return junk


@pytest.mark.parametrize(("settings", "message"), [
    (lambda pki, tmp: {"GATEWAY_TLS_CERT_FILE": pki.server.cert},
     "GATEWAY_TLS_CERT_FILE is set but GATEWAY_TLS_KEY_FILE is not: TLS needs both"),
    (lambda pki, tmp: {"GATEWAY_TLS_KEY_FILE": pki.server.key},
     "GATEWAY_TLS_KEY_FILE is set but GATEWAY_TLS_CERT_FILE is not: TLS needs both"),
    (lambda pki, tmp: {"GATEWAY_TLS_CA_FILE": pki.ca.cert}, "GATEWAY_TLS_CA_FILE needs GATEWAY_TLS_CERT_FILE"),
    (lambda pki, tmp: {"GATEWAY_TLS_CERT_FILE": tmp / "none.crt", "GATEWAY_TLS_KEY_FILE": pki.server.key},
     "none.crt': no such file"),
    (lambda pki, tmp: {"GATEWAY_TLS_CERT_FILE": pki.server.cert, "GATEWAY_TLS_KEY_FILE": tmp / "none.key"},
     "none.key': no such file"),
    (lambda pki, tmp: {"GATEWAY_TLS_CERT_FILE": pki.server.cert, "GATEWAY_TLS_KEY_FILE": pki.client.key},
     "cannot be loaded as a certificate and its private key"),  # the key of another certificate
    (lambda pki, tmp: {"GATEWAY_TLS_CERT_FILE": _junk(tmp), "GATEWAY_TLS_KEY_FILE": pki.server.key},
     "cannot be loaded as a certificate and its private key"),
    (lambda pki, tmp: {"GATEWAY_TLS_CERT_FILE": pki.server.cert, "GATEWAY_TLS_KEY_FILE": pki.server.key,
                       "GATEWAY_TLS_CA_FILE": _junk(tmp)}, "cannot be loaded as PEM CA certificates"),
], ids=["cert-alone", "key-alone", "ca-alone", "no-cert-file", "no-key-file", "key-mismatch", "junk-cert",
        "junk-ca"])
def test_bad_tls_settings_stop_start_up_with_one_line(pki: Pki, tmp_path: Path, settings: object,
                                                      message: str) -> None:
    variables = {name: str(value) for name, value in settings(pki, tmp_path).items()}  # type: ignore[operator]
    done = subprocess.run([sys.executable, "-m", "gateway", "serve", "--port", str(free_port())], cwd=ROOT,
                          env=serve_env(GATEWAY_CONFIG=str(DATA / "anonymous_policy.toml"), **variables),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("gateway: "), done.stderr
    assert message in done.stderr
    assert done.stderr.split(":")[1].strip().startswith("GATEWAY_TLS_")  # it names the variable
