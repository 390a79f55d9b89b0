#!/usr/bin/env bash
# spectsynth set-up and entry points.
#
#   ./run.sh demo    set up, run the whole workflow on the demo cohort, build results/report.html
#   ./run.sh test    set up, run the test suite
#   ./run.sh setup   only set up (.venv with torch 2.13.0 first, then the pinned requirements)
#
# Environment: PYTHON (default python3), VENV (default .venv), CORES (default: all).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
STAMP="$VENV/.spectsynth-installed"

setup() {
    local want
    want=$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
        return 0
    fi
    echo "== setting up $VENV (torch 2.13.0 first, then requirements.txt)"
    if [[ ! -x "$VENV/bin/python" ]]; then
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade "pip>=24"
    # torch first and pinned: any other spec would pull several GB of CUDA packages.
    "$VENV/bin/python" -m pip install --quiet torch==2.13.0
    "$VENV/bin/python" -m pip install --quiet -r requirements.txt
    "$VENV/bin/python" -m pip install --quiet --no-deps -e .
    "$VENV/bin/python" - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"torch {torch.__version__} replaced the pinned 2.13.0"
PY
    echo "$want" > "$STAMP"
}

case "${1:-}" in
    setup)
        setup
        ;;
    demo)
        setup
        export PATH="$PWD/$VENV/bin:$PATH"
        shift
        snakemake --profile profiles/local --cores "${CORES:-all}" "$@"
        snakemake --report results/report.html "$@"
        echo "== report: $PWD/results/report.html"
        ;;
    test)
        setup
        export PATH="$PWD/$VENV/bin:$PATH"
        shift
        set +e
        python -m pytest "$@"
        rc=$?
        set -e
        # pytest's exit code 5 means "no tests collected": a broken suite, not a pass.
        if [[ $rc -eq 5 ]]; then
            echo "no tests were collected" >&2
        fi
        exit $rc
        ;;
    *)
        sed -n '2,9p' "$0"
        exit 2
        ;;
esac
