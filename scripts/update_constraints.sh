#!/usr/bin/env bash
# Regenerate constraints.txt on purpose: set up a throwaway venv with no pins (the latest releases
# pip can find, torch still the local 2.13.0 CPU wheel), freeze it, and keep this file's header.
# Then run the suite on the new pins (make test) and review `git diff constraints.txt` before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
VENV="$TMP/venv" CONSTRAINTS="" SKIP_SYSTEM=1 bash scripts/setup.sh
{
  sed -n '/^#/p;/^$/q' constraints.txt   # the header comment, up to the first blank line
  echo
  # the editable package itself is not a dependency; `--exclude-editable` drops it
  "$TMP/venv/bin/python" -m pip freeze --exclude-editable | grep -v '^#' | LC_ALL=C sort -f
} > "$TMP/constraints.txt"
grep -q '^torch==2\.13\.0+cpu$' "$TMP/constraints.txt" || { echo "update_constraints: torch is not the 2.13.0 CPU build; refusing" >&2; exit 1; }
mv "$TMP/constraints.txt" constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) pins; now run make test and review git diff constraints.txt"
