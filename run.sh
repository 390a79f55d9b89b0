#!/usr/bin/env bash
# spectsynth set-up and entry points.
#
#   ./run.sh demo    set up, run the whole workflow on the demo cohort, build results/report.html
#   ./run.sh test    set up, run the test suite
#   ./run.sh setup   only set up (.venv with torch 2.13.0 first, then the pinned requirements)
#
# Environment: PYTHON (default python3), VENV (default .venv), CORES (default: all),
#              TEST_WORKERS (test processes, default 2).
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

# System packages the test suite uses: Chromium opens the built report (Debian packages).
# Installed when missing and this runs as root with apt-get; otherwise those tests skip
# and say why.
setup_system() {
    local missing=()
    command -v chromium >/dev/null 2>&1 || missing+=(chromium chromium-driver)
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing system packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "== not root or no apt-get: ${missing[*]} not installed; the tests that need them will skip" >&2
    fi
}

# Link profiles/local and profiles/slurm into ~/.config/snakemake so that
# `snakemake --profile slurm` works as typed (Snakemake does not look in ./profiles).
link_profiles() {
    bash .ci/install-profiles.sh >/dev/null 2>&1 ||
        echo "== note: profiles not linked into ~/.config/snakemake (a profile of that name exists); use --profile profiles/slurm" >&2
}

case "${1:-}" in
    setup)
        setup
        link_profiles
        ;;
    demo)
        setup
        link_profiles
        export PATH="$PWD/$VENV/bin:$PATH"
        shift
        snakemake --profile profiles/local --cores "${CORES:-all}" "$@"
        snakemake --report results/report.html "$@"
        echo "== report: $PWD/results/report.html"
        ;;
    test)
        setup
        setup_system
        export PATH="$PWD/$VENV/bin:$PATH"
        shift
        set +e
        # Two workers (TEST_WORKERS; 0 = one process): the tests of the shared tiny run on one,
        # the rest beside it (grouping in tests/conftest.py).
        python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
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
