"""The runtime's gRPC contract: the committed generated code matches its .proto (what `make
check-proto` runs), the check notices a stale file, and the messages and methods are those of
Triton's grpc_service.proto, which stock clients (tritonclient.grpc) are generated from.

Triton's descriptor is read from the source of its _pb2 module, never imported: both define the
`inference.*` messages, and protobuf's process-wide pool refuses a second definition of a name.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from hack import proto

PROTO_FILE = proto.SOURCE_ROOT / proto.PROTO
SERVICE = "GRPCInferenceService"
METHODS = {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"}

pytest.importorskip("grpc_tools", reason="grpcio-tools (the [dev] extra) compiles the .proto")


def test_committed_code_matches_the_proto() -> None:
    assert proto.main(["--check"]) == 0  # prints what is stale


def _edited_source(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the source tree's .proto with `old` replaced by `new`."""
    copy = tmp_path / proto.PROTO
    copy.parent.mkdir(parents=True)
    shutil.copy(PROTO_FILE, copy)
    text = copy.read_text()
    assert text.count(old) == 1
    copy.write_text(text.replace(old, new))
    return tmp_path


REQUEST_ID = "  string id = 3;\n  map<string, InferParameter> parameters = 4;\n  repeated InferInputTensor"


@pytest.mark.parametrize(("old", "new", "problem"), [
    (REQUEST_ID, REQUEST_ID.replace("id = 3;", "id = 3;\n  string trace = 9;"),
     "grpc_predict_v2_pb2.py: its messages differ"),
    ("  rpc ModelInfer(ModelInferRequest) returns (ModelInferResponse) {}\n", "",
     "grpc_predict_v2_pb2_grpc.py: its methods differ"),
    ("  bool live = 1;", "  bool live = 2;", "grpc_predict_v2_pb2.py: its messages differ"),
], ids=["added-field", "removed-method", "renumbered-field"])
def test_a_changed_proto_makes_the_code_stale(tmp_path: Path, old: str, new: str, problem: str) -> None:
    source = _edited_source(tmp_path / "source", old, new)
    problems = proto.stale(source_root=source)
    assert any(p.startswith(problem) for p in problems), problems


def test_missing_generated_code_is_stale(tmp_path: Path) -> None:
    assert proto.stale(committed_dir=tmp_path)[0].startswith("missing:")


# ------------------------------------------------------------------------------ the wire contract


def _triton_descriptor() -> descriptor_pb2.FileDescriptorProto:
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("tritonclient is not installed")
    source = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "service_pb2.py"
    if not source.is_file():
        pytest.skip("tritonclient has no gRPC client (tritonclient[grpc])")
    return proto.file_descriptor(source)


def _messages(
    messages: list[descriptor_pb2.DescriptorProto], prefix: str = ".inference"
) -> dict[str, descriptor_pb2.DescriptorProto]:
    """Every message by full name, nested ones included."""
    out: dict[str, descriptor_pb2.DescriptorProto] = {}
    for message in messages:
        name = f"{prefix}.{message.name}"
        out[name] = message
        out.update(_messages(list(message.nested_type), name))
    return out


def _fields(message: descriptor_pb2.DescriptorProto) -> dict[int, tuple[str, int, int, str]]:
    return {f.number: (f.name, f.type, f.label, f.type_name) for f in message.field}


def test_package_and_service_are_the_stock_ones() -> None:
    ours = proto.file_descriptor(proto.generated_paths(proto.SOURCE_ROOT)[0])
    assert ours.package == "inference"
    assert ours.syntax == "proto3"
    [service] = ours.service
    assert service.name == SERVICE
    assert {m.name for m in service.method} == METHODS


def test_every_message_and_method_is_tritons() -> None:
    ours = proto.file_descriptor(proto.generated_paths(proto.SOURCE_ROOT)[0])
    triton = _triton_descriptor()
    assert triton.package == ours.package
    theirs = _messages(list(triton.message_type))
    for name, message in _messages(list(ours.message_type)).items():
        assert name in theirs, name
        assert _fields(message) == _fields(theirs[name]), name
        assert [o.name for o in message.oneof_decl] == [o.name for o in theirs[name].oneof_decl], name
    [service] = ours.service
    their_methods = {m.name: m for s in triton.service if s.name == SERVICE for m in s.method}
    for method in service.method:
        assert (method.input_type, method.output_type) == (
            their_methods[method.name].input_type, their_methods[method.name].output_type), method.name
