"""Generate the runtime's gRPC code from its .proto, or check that the committed code is current.

    python -m hack.proto            # rewrite grpc_predict_v2_pb2.py and _pb2_grpc.py (make proto)
    python -m hack.proto --check    # exit 1 when they do not match the .proto (make check-proto)

The check compares what the code means, not its text: the file descriptor embedded in the _pb2
module and the method paths of the _pb2_grpc module, against a fresh compilation. So another
grpcio-tools release (whose output differs in headers and version guards) is not "stale", while
any change to a message, field or method is. Needs grpcio-tools (the `[dev]` extra).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOT = ROOT / "operator"
PROTO = Path("modelpilot/server/proto/grpc_predict_v2.proto")  # relative to SOURCE_ROOT: the import path
_METHOD_PATH = re.compile(r"['\"](/inference\.\w+/\w+)['\"]")


def generated_paths(out_dir: Path, proto: Path = PROTO) -> tuple[Path, Path]:
    stem = out_dir / proto.parent / proto.stem
    return stem.with_name(stem.name + "_pb2.py"), stem.with_name(stem.name + "_pb2_grpc.py")


def compile_proto(out_dir: Path, source_root: Path = SOURCE_ROOT, proto: Path = PROTO) -> tuple[Path, Path]:
    """protoc (grpcio-tools) on `proto` into `out_dir`; returns the two generated files."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{source_root}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", str(proto)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {source_root / proto}")
    return generated_paths(out_dir, proto)


def file_descriptor(pb2_file: Path) -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto a _pb2 module registers, read from its source (not imported: that
    would register it in the process-wide descriptor pool)."""
    tree = ast.parse(pb2_file.read_text())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "AddSerializedFile" and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, bytes)):
            parsed = descriptor_pb2.FileDescriptorProto()
            parsed.ParseFromString(node.args[0].value)
            return parsed
    raise ValueError(f"{pb2_file}: no serialized file descriptor found")


def method_paths(grpc_file: Path) -> set[str]:
    return set(_METHOD_PATH.findall(grpc_file.read_text()))


def stale(committed_dir: Path = SOURCE_ROOT, source_root: Path = SOURCE_ROOT, proto: Path = PROTO) -> list[str]:
    """What differs between the committed generated code under `committed_dir` and a fresh
    compilation of `source_root / proto`; empty when current."""
    pb2, grpc_file = generated_paths(committed_dir, proto)
    missing = [str(p) for p in (pb2, grpc_file) if not p.is_file()]
    if missing:
        return [f"missing: {', '.join(missing)}"]
    with tempfile.TemporaryDirectory() as tmp:
        fresh_pb2, fresh_grpc = compile_proto(Path(tmp), source_root, proto)
        problems = []
        if file_descriptor(pb2) != file_descriptor(fresh_pb2):
            problems.append(f"{pb2.name}: its messages differ from {proto.name}")
        if method_paths(grpc_file) != method_paths(fresh_grpc):
            problems.append(f"{grpc_file.name}: its methods differ from {proto.name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.proto", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for problem in problems:
            print(f"stale gRPC code: {problem}; run `make proto`", file=sys.stderr)
        return 1 if problems else 0
    for path in compile_proto(SOURCE_ROOT):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
