"""Fixtures for the runtime tests: real model files, real server processes on loopback, MinIO."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.minio import MinioServer, run_minio
from tests.support import testmodels
from tests.support.gotools import ToolchainMissing
from tests.support.testing import RuntimeProcess


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model directories written once per session, by name."""
    root = tmp_path_factory.mktemp("models")
    paths = {
        "iris": testmodels.write_iris(root / "iris"),
        "iris-two": testmodels.write_iris(root / "iris-two", two_inputs=True),
        "echo": testmodels.write_echo(root / "echo"),
        "failing": testmodels.write_failing(root / "failing", error_ratio=0.5),
        "corrupt": testmodels.write_corrupt(root / "corrupt"),
        "xgboost-json": testmodels.write_xgboost(root / "xgboost-json"),
        "xgboost-ubj": testmodels.write_xgboost(root / "xgboost-ubj", ubj=True),
        "onnx": testmodels.write_onnx(root / "onnx"),
        "onnx-two": testmodels.write_onnx_two_inputs(root / "onnx-two"),
    }
    return {name: path.parent for name, path in paths.items()}


def _ready(server: RuntimeProcess) -> RuntimeProcess:
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def iris_server(models: dict[str, Path]) -> Iterator[RuntimeProcess]:
    with RuntimeProcess.serve(models["iris"], name="iris", extra_args=["--model-version", "v1"]) as server:
        yield _ready(server)


@pytest.fixture(scope="module")
def echo_server(models: dict[str, Path]) -> Iterator[RuntimeProcess]:
    with RuntimeProcess.serve(models["echo"], name="echo", extra_args=["--format", "sklearn"]) as server:
        yield _ready(server)


@pytest.fixture(scope="session")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    try:
        with run_minio(tmp_path_factory.mktemp("minio")) as server:
            yield server
    except ToolchainMissing as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The iris model with its drift profile beside it."""
    directory = tmp_path_factory.mktemp("profiled") / "iris"
    testmodels.write_iris(directory)
    testmodels.write_profile(directory)
    return directory
