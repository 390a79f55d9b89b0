#!/usr/bin/env bash
# One prepared check of the training path on a GPU (see benchmarks/gpu_check.py for the stages).
#   bash benchmarks/gpu_check.sh --out gpu_check.jsonl            # GPU machine, about 8 minutes
#   bash benchmarks/gpu_check.sh --quick --out /tmp/quick.jsonl   # any machine, tiny sizes
# Python: $PYTHON, else the checkout's .venv, else python3 on the PATH.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
py="${PYTHON:-}"
if [ -z "$py" ]; then
    if [ -x "$repo/.venv/bin/python" ]; then py="$repo/.venv/bin/python"; else py="python3"; fi
fi
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND="${MPLBACKEND:-Agg}"
exec "$py" "$here/gpu_check.py" "$@"
