#!/bin/bash
# The whole protocol benchmark on two processes (one thread each); logs next to this file. Usage: bash bench/protocol_bench.sh [options of protocol_bench.py]
set -e
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
$PY bench/protocol_bench.py --phase score "$@"
for phase in choose retrain; do
  $PY bench/protocol_bench.py --phase $phase --part 0 "$@" & p0=$!
  $PY bench/protocol_bench.py --phase $phase --part 1 "$@"
  wait $p0
done
$PY bench/protocol_bench.py --phase report "$@"
