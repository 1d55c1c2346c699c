"""The storage step: file, http(s) with sha256, s3 against a real MinIO, archives, the CLI."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelpilot.monitoring.contract import PROFILE_FILE
from modelpilot.server.drift import find_profile
from modelpilot.server.loaders import load_model
from modelpilot.server.storage import MARKER, FetchError, fetch, split_sha256
from tests.server.fileserver import listing, serve_files
from tests.server.minio import MinioServer
from tests.support import testmodels
from tests.support.testing import RuntimeProcess, fetch_cli, iris_request

TOKEN = "Bearer s3cret-token"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of things to serve: a model file, a model dir, good and evil archives."""
    root = tmp_path_factory.mktemp("files")
    testmodels.write_iris(root / "iris")
    with tarfile.open(root / "iris.tar.gz", "w:gz") as tf:
        tf.add(root / "iris", arcname="iris")  # one top-level folder, as archives often have
    with zipfile.ZipFile(root / "iris.zip", "w") as zf:
        zf.write(root / "iris" / testmodels.MODEL_FILE, testmodels.MODEL_FILE)
    _evil_tar(root / "dotdot.tar.gz", "../escaped.txt")
    _evil_tar(root / "absolute.tar", "/tmp/modelpilot-escaped.txt")
    _evil_tar(root / "symlink.tar.gz", "link", symlink="../../outside")
    with zipfile.ZipFile(root / "dotdot.zip", "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../escaped.txt", "evil")
    return root


def _evil_tar(path: Path, name: str, symlink: str | None = None) -> None:
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tf:
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 4
        tf.addfile(ok, io.BytesIO(b"fine"))
        info = tarfile.TarInfo(name)
        if symlink is not None:
            info.type = tarfile.SYMTYPE
            info.linkname = symlink
            tf.addfile(info)
        else:
            info.size = 4
            tf.addfile(info, io.BytesIO(b"evil"))


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the files folder; paths under /private/ need the Authorization header."""

    def do_GET(self) -> None:
        if self.path.startswith("/private/"):
            if self.headers.get("Authorization") != TOKEN:
                self.send_error(401, "unauthorized")
                return
            self.path = self.path.removeprefix("/private")
        super().do_GET()

    def do_HEAD(self) -> None:
        if self.path.startswith("/private/"):
            if self.headers.get("Authorization") != TOKEN:
                self.send_error(401, "unauthorized")
                return
            self.path = self.path.removeprefix("/private")
        super().do_HEAD()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_base(files: Path) -> Iterator[str]:
    yield from serve_files(_Handler, files)


# --- file ----------------------------------------------------------------------------------------
def test_file_directory(files: Path, tmp_path: Path) -> None:
    target = tmp_path / "models"
    fetch(f"file://{files / 'iris'}", target)
    assert listing(target) == [MARKER, testmodels.MODEL_FILE]
    assert (target / testmodels.MODEL_FILE).read_bytes() == (files / "iris" / testmodels.MODEL_FILE).read_bytes()
    fetch(f"file://{files / 'iris'}", target)  # idempotent: the init container may run again
    with pytest.raises(FetchError, match="is not empty; pass --force"):
        fetch(f"file://{files / 'iris.zip'}", target)
    fetch(f"file://{files / 'iris.zip'}", target, force=True)
    assert listing(target) == [MARKER, testmodels.MODEL_FILE]


def test_file_with_sha256_and_plain_path(files: Path, tmp_path: Path) -> None:
    model = files / "iris" / testmodels.MODEL_FILE
    fetch(f"file://{model}#sha256={_sha(model)}", tmp_path / "a")
    assert load_model(tmp_path / "a").platform == "sklearn"
    fetch(str(model), tmp_path / "b", sha256=_sha(model))
    assert (tmp_path / "b" / testmodels.MODEL_FILE).is_file()
    with pytest.raises(FetchError, match="does not exist"):
        fetch(f"file://{files / 'missing.joblib'}", tmp_path / "c")
    assert listing(tmp_path / "c") == []


# --- http ----------------------------------------------------------------------------------------
def test_http_with_correct_sha256(files: Path, http_base: str, tmp_path: Path) -> None:
    digest = _sha(files / "iris.tar.gz")
    fetch(f"{http_base}/iris.tar.gz#sha256={digest}", tmp_path / "m")
    assert listing(tmp_path / "m") == [MARKER, "iris", f"iris/{testmodels.MODEL_FILE}"]
    assert load_model(tmp_path / "m").platform == "sklearn"


@pytest.mark.parametrize("how", ["fragment", "argument", "environment"])
def test_http_with_wrong_sha256_is_refused_and_leaves_nothing(http_base: str, tmp_path: Path, how: str) -> None:
    wrong = "0" * 64
    target = tmp_path / "m"
    uri = f"{http_base}/iris.tar.gz"
    message = re.escape(f"sha256 mismatch for {uri}: expected {wrong}, got ") + "[0-9a-f]{64}; refused"
    with pytest.raises(FetchError, match=message):
        if how == "fragment":
            fetch(f"{uri}#sha256={wrong}", target)
        elif how == "argument":
            fetch(uri, target, sha256=wrong)
        else:
            fetch(uri, target, environ={"MODELPILOT_MODEL_SHA256": wrong})
    assert listing(target) == []  # no model, no marker, no staging folder


def test_http_authorization_and_missing_file(http_base: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="401"):
        fetch(f"{http_base}/private/iris.zip", tmp_path / "a", environ={})
    assert listing(tmp_path / "a") == []
    # The token is only ever sent over https (test_fetch_safety.py fetches with it from an https server).
    with pytest.raises(FetchError, match="HTTP_AUTHORIZATION is only sent over https://"):
        fetch(f"{http_base}/private/iris.zip", tmp_path / "b", environ={"HTTP_AUTHORIZATION": TOKEN})
    assert listing(tmp_path / "b") == []
    with pytest.raises(FetchError, match="does not exist"):
        fetch(f"{http_base}/nothing-here.joblib", tmp_path / "c", environ={})


# --- archives ------------------------------------------------------------------------------------
@pytest.mark.parametrize("archive", ["dotdot.tar.gz", "absolute.tar", "symlink.tar.gz", "dotdot.zip"])
def test_archive_escaping_the_target_is_refused(files: Path, tmp_path: Path, archive: str) -> None:
    target = tmp_path / "deep" / "models"
    with pytest.raises(FetchError, match="points outside the target directory; refused"):
        fetch(f"file://{files / archive}", target)
    assert listing(target) == []  # not even the harmless member
    assert listing(tmp_path) == ["deep", "deep/models"]
    assert not Path("/tmp/modelpilot-escaped.txt").exists()


def test_zip_is_extracted(files: Path, tmp_path: Path) -> None:
    fetch(f"file://{files / 'iris.zip'}", tmp_path / "m")
    assert listing(tmp_path / "m") == [MARKER, testmodels.MODEL_FILE]


# --- s3 against a real S3-compatible server --------------------------------------------------------
@pytest.fixture(scope="module")
def bucket(minio: MinioServer, files: Path) -> str:
    import s3fs

    fs = s3fs.S3FileSystem(
        key=minio.access_key, secret=minio.secret_key, client_kwargs={"endpoint_url": minio.endpoint}
    )
    fs.mkdir("models")
    fs.put_file(str(files / "iris" / testmodels.MODEL_FILE), "models/iris/v1/model.joblib")
    fs.put_file(str(files / "iris.tar.gz"), "models/archives/iris.tar.gz")
    fs.mkdir("public")
    fs.put_file(str(files / "iris.zip"), "public/iris.zip")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject", "s3:ListBucket"],
             "Resource": ["arn:aws:s3:::public", "arn:aws:s3:::public/*"]}
        ],
    }
    fs.call_s3("put_bucket_policy", Bucket="public", Policy=json.dumps(policy))
    return "models"


def test_s3_object_prefix_and_archive(minio: MinioServer, bucket: str, files: Path, tmp_path: Path) -> None:
    env = minio.env()
    model = files / "iris" / testmodels.MODEL_FILE
    fetch(f"s3://{bucket}/iris/v1/model.joblib#sha256={_sha(model)}", tmp_path / "object", environ=env)
    assert (tmp_path / "object" / testmodels.MODEL_FILE).read_bytes() == model.read_bytes()
    fetch(f"s3://{bucket}/iris/v1", tmp_path / "prefix", environ=env)
    assert listing(tmp_path / "prefix") == [MARKER, testmodels.MODEL_FILE]
    fetch(f"s3://{bucket}/archives/iris.tar.gz", tmp_path / "archive", environ=env)
    assert load_model(tmp_path / "archive").platform == "sklearn"


def test_s3_refusals(minio: MinioServer, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="sha256 mismatch"):
        fetch(f"s3://{bucket}/iris/v1/model.joblib", tmp_path / "a", sha256="1" * 64, environ=minio.env())
    assert listing(tmp_path / "a") == []
    bad = {**minio.env(), "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
    with pytest.raises(FetchError, match=re.escape("cannot fetch s3://models/iris/v1/model.joblib")):
        fetch(f"s3://{bucket}/iris/v1/model.joblib", tmp_path / "b", environ=bad)
    assert listing(tmp_path / "b") == []
    with pytest.raises(FetchError, match="does not exist"):
        fetch(f"s3://{bucket}/iris/v404/model.joblib", tmp_path / "c", environ=minio.env())


def test_s3_anonymous_public_bucket(minio: MinioServer, bucket: str, tmp_path: Path) -> None:
    env = {"AWS_ENDPOINT_URL": minio.endpoint, "AWS_REGION": "us-east-1", "MODELPILOT_S3_ANONYMOUS": "true"}
    fetch("s3://public/iris.zip", tmp_path / "m", environ=env)
    assert listing(tmp_path / "m") == [MARKER, testmodels.MODEL_FILE]
    with pytest.raises(FetchError, match=re.escape("cannot fetch s3://models/iris/v1/model.joblib")):
        fetch(f"s3://{bucket}/iris/v1/model.joblib", tmp_path / "private", environ=env)


def test_serve_a_model_uri_from_s3(minio: MinioServer, bucket: str) -> None:
    # `serve --model s3://...` fetches first (not ready meanwhile), then loads and serves.
    with RuntimeProcess.serve(f"s3://{bucket}/iris/v1", name="iris", env=minio.env()) as server:
        server.wait_ready()
        status, body = server.post_json("/v2/models/iris/infer", iris_request())
        assert status == 200
        assert body["outputs"][0]["data"] == [0]


# --- the drift profile beside a single model file --------------------------------------------------
@pytest.fixture(scope="module")
def profiled(files: Path) -> Path:
    """files/profiled/: the iris model with its profile.json; and an archive of that folder."""
    testmodels.write_iris(files / "profiled")
    testmodels.write_profile(files / "profiled")
    with tarfile.open(files / "profiled.tar.gz", "w:gz") as tf:
        tf.add(files / "profiled", arcname="profiled")
    return files / "profiled"


def test_file_model_brings_the_profile_beside_it(profiled: Path, tmp_path: Path) -> None:
    model = profiled / testmodels.MODEL_FILE
    # The sha256 is the model file's: the profile is fetched along, not checked against it.
    fetch(f"file://{model}#sha256={_sha(model)}", tmp_path / "uri")
    assert listing(tmp_path / "uri") == [MARKER, testmodels.MODEL_FILE, PROFILE_FILE]
    assert (tmp_path / "uri" / PROFILE_FILE).read_bytes() == (profiled / PROFILE_FILE).read_bytes()
    fetch(str(model), tmp_path / "path")
    assert listing(tmp_path / "path") == [MARKER, testmodels.MODEL_FILE, PROFILE_FILE]
    with pytest.raises(FetchError, match="sha256 mismatch"):
        fetch(f"file://{model}#sha256={_sha(profiled / PROFILE_FILE)}", tmp_path / "wrong")
    assert listing(tmp_path / "wrong") == []


def test_no_profile_beside_the_model_is_no_error(files: Path, tmp_path: Path) -> None:
    fetch(f"file://{files / 'iris' / testmodels.MODEL_FILE}", tmp_path / "m")
    assert listing(tmp_path / "m") == [MARKER, testmodels.MODEL_FILE]


def test_a_directory_or_an_archive_carries_its_profile(profiled: Path, files: Path, tmp_path: Path) -> None:
    fetch(f"file://{profiled}", tmp_path / "dir")
    assert listing(tmp_path / "dir") == [MARKER, testmodels.MODEL_FILE, PROFILE_FILE]
    fetch(f"file://{files / 'profiled.tar.gz'}", tmp_path / "archive")
    assert find_profile(tmp_path / "archive") == tmp_path / "archive" / "profiled" / PROFILE_FILE


def test_http_model_brings_its_profile(profiled: Path, http_base: str, tmp_path: Path) -> None:
    model = profiled / testmodels.MODEL_FILE
    fetch(f"{http_base}/profiled/{testmodels.MODEL_FILE}#sha256={_sha(model)}", tmp_path / "with", environ={})
    assert listing(tmp_path / "with") == [MARKER, testmodels.MODEL_FILE, PROFILE_FILE]
    assert (tmp_path / "with" / PROFILE_FILE).read_bytes() == (profiled / PROFILE_FILE).read_bytes()
    fetch(f"{http_base}/iris/{testmodels.MODEL_FILE}", tmp_path / "without", environ={})  # a 404 for the profile
    assert listing(tmp_path / "without") == [MARKER, testmodels.MODEL_FILE]


def test_serve_a_model_uri_with_its_profile(profiled: Path, http_base: str) -> None:
    with RuntimeProcess.serve(f"{http_base}/profiled/{testmodels.MODEL_FILE}", name="iris") as server:
        server.wait_ready()
        assert server.post_json("/v2/models/iris/infer", iris_request())[0] == 200
        loaded = 'modelpilot_drift_profile_loaded{model="iris",model_deployment="iris",revision="",track="",version=""}'
        assert f"{loaded} 1.0" in server.metrics_text()


# --- the CLI, as the init container runs it --------------------------------------------------------

def test_fetch_cli(http_base: str, files: Path, tmp_path: Path) -> None:
    uri = f"{http_base}/iris.zip"
    ok = fetch_cli(env={"MODELPILOT_MODEL_URI": uri, "MODELPILOT_MODEL_DIR": str(tmp_path / "env")})
    assert ok.returncode == 0, ok.stderr
    assert listing(tmp_path / "env") == [MARKER, testmodels.MODEL_FILE]
    bad = fetch_cli(f"{uri}#sha256={'f' * 64}", str(tmp_path / "args"), env={})
    assert bad.returncode == 1
    assert f"modelpilot fetch: sha256 mismatch for {uri}: expected {'f' * 64}" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert listing(tmp_path / "args") == []
    usage = fetch_cli(env={})
    assert usage.returncode == 2


def test_sha256_sources() -> None:
    digest = "ab" * 32
    assert split_sha256(f"https://h/m.joblib#sha256={digest.upper()}") == ("https://h/m.joblib", digest)
    assert split_sha256("https://h/m.joblib", digest) == ("https://h/m.joblib", digest)
    assert split_sha256(f"https://h/m.joblib#sha256={digest}", digest) == ("https://h/m.joblib", digest)
    with pytest.raises(FetchError, match="differ"):
        split_sha256(f"https://h/m.joblib#sha256={digest}", "cd" * 32)
    with pytest.raises(FetchError, match="only #sha256=<hex> is understood"):
        split_sha256("https://h/m.joblib#md5=abc")
    with pytest.raises(FetchError, match="sha256 must be 64 hex digits"):
        split_sha256("https://h/m.joblib#sha256=xyz")
