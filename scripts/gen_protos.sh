#!/usr/bin/env bash
# Regenerates the Python code (_pb2, _pb2_grpc, .pyi) beside every .proto under protos/.
# The one script that produces generated code; CI runs it and fails on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mapfile -t files < <(cd protos && find creditscore -name '*.proto' | sort)
find protos/creditscore -path '*/v1/*' \( -name '*_pb2.py' -o -name '*_pb2_grpc.py' -o -name '*_pb2.pyi' \) -delete
"$PY" -m grpc_tools.protoc -I protos \
  --python_out=protos --pyi_out=protos --grpc_python_out=protos "${files[@]}"
# Every directory on the way to a generated module is a regular package.
for f in "${files[@]}"; do
  d=protos/$(dirname "$f")
  while [ "$d" != protos ]; do
    [ -f "$d/__init__.py" ] || : > "$d/__init__.py"
    d=$(dirname "$d")
  done
done
