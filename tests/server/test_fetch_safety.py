"""`modelpilot fetch` against hostile or careless inputs: credentials over plain http, link-local
and cloud-metadata addresses, downloads and archives past the size limit, presigned signatures."""

from __future__ import annotations

import http.server
import io
import ipaddress
import logging
import shutil
import socket
import ssl
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelpilot.server import storage
from modelpilot.server.storage import FetchError, fetch
from tests.server.fileserver import listing, serve_files
from tests.server.minio import MinioServer
from tests.support import testmodels
from tests.support.testing import RuntimeProcess, fetch_cli

TOKEN = "Bearer s3cret-token"
LIMIT = 100_000
SECRETS = ("deadbeefcafe0123sig", "AKIAEXAMPLEKEY", "SESSIONTOKEN42", "goog-sig-99", "azure-sig-77", "plain-token-5")
PRESIGNED = (
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLEKEY%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
    "&X-Amz-Security-Token=SESSIONTOKEN42&X-Amz-Signature=deadbeefcafe0123sig"
    "&X-Goog-Signature=goog-sig-99&sig=azure-sig-77&token=plain-token-5"
)


# --- a tripwire: no test may ever open a connection to a link-local address ---------------------------
_BLOCKED = [ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"),
            ipaddress.ip_network("fd00:ec2::254/128")]


@pytest.fixture(autouse=True)
def tripwire(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replaces socket.connect in this process: a connection to a link-local address is recorded
    and fails instead of reaching a real metadata service (this very machine may have one)."""
    attempts: list[str] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else ""
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return real_connect(self, address)
        mapped = getattr(ip, "ipv4_mapped", None) or ip
        if any(mapped in net for net in _BLOCKED):
            attempts.append(str(ip))
            raise ConnectionRefusedError(111, f"tripwire: connection to {ip} blocked by the test")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


# --- servers -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("safety-files")
    testmodels.write_iris(root)
    (root / "big.bin").write_bytes(b"\x01" * (3 * LIMIT))
    with tarfile.open(root / "bomb.tar.gz", "w:gz") as tf:  # 300 KB of zeros in a 1 KB archive
        info = tarfile.TarInfo("model.bin")
        info.size = 3 * LIMIT
        tf.addfile(info, io.BytesIO(b"\0" * info.size))
    with zipfile.ZipFile(root / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.bin", b"\0" * (3 * LIMIT))
    (root / "small.bin").write_bytes(b"\x02" * (LIMIT // 2))
    return root


class _Handler(http.server.SimpleHTTPRequestHandler):
    seen_authorization: list[str | None] = []  # shared by the server's threads

    def do_GET(self) -> None:
        _Handler.seen_authorization.append(self.headers.get("Authorization"))
        path = self.path.split("?", 1)[0]
        if path.startswith("/redirect-metadata"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
            self.end_headers()
        elif path.startswith("/forbidden"):
            self.send_error(403, "signature does not match")
        elif path.startswith("/stream/"):  # no Content-Length: the size is known only while reading
            data = (Path(self.directory) / path.removeprefix("/stream/")).read_bytes()
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True
        else:
            super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_base(files: Path) -> Iterator[str]:
    yield from serve_files(_Handler, files)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate for the local https server")
    root = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem")],
        check=True,
        capture_output=True,
    )
    return root


@pytest.fixture(scope="module")
def https_base(files: Path, certificate: Path) -> Iterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
    yield from serve_files(_Handler, files, context)


# --- 6. Authorization only over https ---------------------------------------------------------------
def test_authorization_is_never_sent_over_plain_http(
    http_base: str, https_base: str, certificate: Path, tmp_path: Path
) -> None:
    _Handler.seen_authorization.clear()
    with pytest.raises(FetchError, match=r"HTTP_AUTHORIZATION is only sent over https://.*refused"):
        fetch(f"{http_base}/{testmodels.MODEL_FILE}", tmp_path / "a", environ={"HTTP_AUTHORIZATION": TOKEN})
    assert _Handler.seen_authorization == []  # nothing was even requested
    assert listing(tmp_path / "a") == []
    # Over https the header is sent (the CLI, as the init container runs it, trusting the test CA).
    env = {"HTTP_AUTHORIZATION": TOKEN, "SSL_CERT_FILE": str(certificate / "cert.pem")}
    done = fetch_cli(f"{https_base}/{testmodels.MODEL_FILE}", str(tmp_path / "b"), env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b" / testmodels.MODEL_FILE).is_file()
    # Twice: the model, then the drift profile looked for beside it, both over https.
    assert _Handler.seen_authorization == [TOKEN, TOKEN]
    assert TOKEN not in done.stderr


# --- 7. link-local and cloud-metadata addresses ---------------------------------------------------------
@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data/model.joblib",
        "https://169.254.170.2/v2/credentials/model.joblib",
        "http://[fd00:ec2::254]/latest/meta-data/model.joblib",
        "http://[::ffff:169.254.169.254]/model.joblib",
        "http://[fe80::1]:8080/model.joblib",
        "http://169.254.169.254./model.joblib",
        "http://2852039166/model.joblib",  # 169.254.169.254 as one number, which resolvers accept
        "http://metadata.test/model.joblib",  # resolves to 169.254.169.254 below
    ],
)
def test_link_local_addresses_are_refused(
    uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tripwire: list[str]
) -> None:
    _resolve_metadata_test(monkeypatch)
    with pytest.raises(FetchError, match=r"is a link-local or cloud-metadata address; refused"):
        fetch(uri, tmp_path / "m", environ={})
    assert tripwire == []
    assert listing(tmp_path / "m") == []


def _resolve_metadata_test(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "metadata.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port or 80))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_redirect_to_the_metadata_service_is_refused(http_base: str, tmp_path: Path, tripwire: list[str]) -> None:
    with pytest.raises(FetchError, match=r"169\.254\.169\.254 is a link-local or cloud-metadata address; refused"):
        fetch(f"{http_base}/redirect-metadata/model.joblib", tmp_path / "m", environ={})
    assert tripwire == []
    assert listing(tmp_path / "m") == []


def test_s3_endpoint_on_a_link_local_address_is_refused(tmp_path: Path, tripwire: list[str]) -> None:
    env = {"AWS_ENDPOINT_URL": "http://169.254.169.254:80", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    with pytest.raises(FetchError, match=r"AWS_ENDPOINT_URL .*link-local or cloud-metadata address; refused"):
        fetch("s3://bucket/model.joblib", tmp_path / "m", environ=env)
    assert tripwire == []


def test_link_local_is_allowed_when_the_setting_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tripwire: list[str]
) -> None:
    _resolve_metadata_test(monkeypatch)
    env = {"MODELPILOT_ALLOW_LINK_LOCAL": "true"}
    with pytest.raises(FetchError) as failed:  # the fetch tried to connect: the test's tripwire stopped it
        fetch("http://metadata.test/model.joblib", tmp_path / "m", environ=env)
    assert "link-local or cloud-metadata" not in str(failed.value)
    assert "tripwire" in str(failed.value)
    assert tripwire and set(tripwire) == {"169.254.169.254"}


# --- 8. size limits -----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["big.bin", "stream/big.bin"])
def test_download_past_the_limit_is_refused(http_base: str, tmp_path: Path, path: str) -> None:
    env = {"MODELPILOT_MAX_MODEL_BYTES": str(LIMIT)}
    with pytest.raises(FetchError, match=r"larger than the limit of 100000 bytes \(MODELPILOT_MAX_MODEL_BYTES\)"):
        fetch(f"{http_base}/{path}", tmp_path / "m", environ=env)
    assert listing(tmp_path / "m") == []  # nothing half-written, no staging folder
    fetch(f"{http_base}/small.bin", tmp_path / "ok", environ=env)
    assert (tmp_path / "ok" / "small.bin").stat().st_size == LIMIT // 2


def test_local_copy_past_the_limit_is_refused(files: Path, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=r"larger than the limit of 100000 bytes"):
        fetch(f"file://{files / 'big.bin'}", tmp_path / "m", environ={"MODELPILOT_MAX_MODEL_BYTES": "100000"})
    assert listing(tmp_path / "m") == []


@pytest.mark.parametrize("archive", ["bomb.tar.gz", "bomb.zip"])
def test_archive_expanding_past_the_limit_is_refused(files: Path, http_base: str, tmp_path: Path, archive: str) -> None:
    assert (files / archive).stat().st_size < LIMIT // 10
    with pytest.raises(FetchError, match=rf"{archive} expands past the limit of 100000 bytes"):
        fetch(f"{http_base}/{archive}", tmp_path / "m", environ={"MODELPILOT_MAX_MODEL_BYTES": "100000"})
    assert listing(tmp_path / "m") == []


def test_s3_prefix_past_the_limit_is_refused(minio: MinioServer, files: Path, tmp_path: Path) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(key=minio.access_key, secret=minio.secret_key,
                           client_kwargs={"endpoint_url": minio.endpoint}, skip_instance_cache=True)
    fs.mkdir("limits")
    for name in ("a.bin", "b.bin", "c.bin"):
        fs.put_file(str(files / "small.bin"), f"limits/model/{name}")
    env = {**minio.env(), "MODELPILOT_MAX_MODEL_BYTES": str(LIMIT)}
    with pytest.raises(FetchError, match=r"larger than the limit of 100000 bytes"):
        fetch("s3://limits/model", tmp_path / "prefix", environ=env)
    assert listing(tmp_path / "prefix") == []
    with pytest.raises(FetchError, match=r"a\.bin is larger than the limit of 1000 bytes"):
        fetch("s3://limits/model/a.bin", tmp_path / "object", environ={**env, "MODELPILOT_MAX_MODEL_BYTES": "1000"})
    assert listing(tmp_path / "object") == []


def test_size_setting() -> None:
    assert storage.DEFAULT_MAX_BYTES == 20 * 2**30
    assert storage.parse_size("20Gi") == storage.DEFAULT_MAX_BYTES
    sizes = (storage.parse_size("100000"), storage.parse_size("512Mi"), storage.parse_size("2G"))
    assert sizes == (100_000, 512 * 2**20, 2 * 10**9)
    for bad in ("", "-1", "lots", "1.5Gi", "0"):
        with pytest.raises(FetchError, match="MODELPILOT_MAX_MODEL_BYTES"):
            storage.parse_size(bad)


# --- 9. presigned URLs never reach logs or errors ---------------------------------------------------------
def _assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} leaked into: {text}"


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("missing.joblib", "does not exist"),
        ("forbidden/model.joblib", "cannot fetch"),
        (f"{testmodels.MODEL_FILE}#sha256={'0' * 64}", "sha256 mismatch"),
    ],
)
def test_presigned_signatures_are_redacted_in_errors(
    http_base: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str, match: str
) -> None:
    caplog.set_level(logging.DEBUG)
    name, _, fragment = path.partition("#")
    uri = f"{http_base}/{name}{PRESIGNED}" + (f"#{fragment}" if fragment else "")
    with pytest.raises(FetchError, match=match) as refused:
        fetch(uri, tmp_path / "m", environ={})
    message = str(refused.value)
    _assert_clean(message)
    assert "X-Amz-Signature=REDACTED" in message
    assert "X-Amz-Date=20260101T000000Z" in message  # what is not secret stays, for debugging
    _assert_clean(caplog.text)


def test_presigned_signatures_are_redacted_in_logs_and_the_cli(
    http_base: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    uri = f"{http_base}/{testmodels.MODEL_FILE}{PRESIGNED}"
    fetch(uri, tmp_path / "m", environ={})
    assert (tmp_path / "m" / testmodels.MODEL_FILE).is_file()
    assert "X-Amz-Signature=REDACTED" in caplog.text
    _assert_clean(caplog.text)
    failed = fetch_cli(f"{http_base}/forbidden/model.joblib{PRESIGNED}", str(tmp_path / "cli"), env={})
    assert failed.returncode == 1
    assert "403" in failed.stderr
    _assert_clean(failed.stderr)


def test_serve_never_shows_the_signature(http_base: str) -> None:
    uri = f"{http_base}/{testmodels.MODEL_FILE}{PRESIGNED}"
    with RuntimeProcess.serve(uri, name="iris", extra_args=["--log-level", "debug"]) as server:
        server.wait_ready()
        assert server.get("/v2/health/ready") == (200, {"ready": True})
        log = server.log()
    assert "X-Amz-Signature=REDACTED" in log
    _assert_clean(log)
    with RuntimeProcess.serve(f"{http_base}/forbidden/model.joblib{PRESIGNED}", name="iris") as server:
        server.wait_live()
        server.wait_until(lambda: "403" in server.get("/v2/health/ready")[1].get("reason", ""), 60, "failed")
        status, body = server.get("/v2/health/ready")
        log = server.log()
    assert status == 503
    _assert_clean(body["reason"])
    _assert_clean(log)
