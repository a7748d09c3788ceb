#!/usr/bin/env bash
# Regenerates the Python code beside every .proto under protos/: the messages (_pb2.py),
# the gRPC stubs and servicers (_pb2_grpc.py), and typed stubs for both (_pb2.pyi,
# _pb2_grpc.pyi, from mypy-protobuf). The one script that produces generated code; CI
# runs it and fails on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BIN=$(dirname "$PY")
mapfile -t files < <(cd protos && find creditscore -name '*.proto' | sort)
find protos/creditscore -path '*/v1/*' \( -name '*_pb2.py' -o -name '*_pb2_grpc.py' -o -name '*_pb2.pyi' \
  -o -name '*_pb2_grpc.pyi' \) -delete
"$PY" -m grpc_tools.protoc -I protos \
  --plugin=protoc-gen-mypy="$BIN/protoc-gen-mypy" --plugin=protoc-gen-mypy_grpc="$BIN/protoc-gen-mypy_grpc" \
  --python_out=protos --grpc_python_out=protos --mypy_out=protos --mypy_grpc_out=protos "${files[@]}" \
  2> >(grep -v "^Writing mypy to" >&2)
# Every directory from a domain down to its generated modules is a regular package;
# protos/creditscore itself is not: `creditscore` is a namespace package shared with src/.
for f in "${files[@]}"; do
  d=protos/$(dirname "$f")
  while [ "$d" != protos/creditscore ]; do
    [ -f "$d/__init__.py" ] || : > "$d/__init__.py"
    d=$(dirname "$d")
  done
done
