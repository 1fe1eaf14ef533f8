#!/usr/bin/env bash
# Install Debian's PostgreSQL server (15 on bookworm) for the job-store tests, when it is missing.
# Idempotent and quiet: does nothing if an initdb already exists. The tests start their own throwaway
# cluster with initdb/pg_ctl (as the postgres user when run as root), so no service is enabled here.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup_postgres: PostgreSQL is missing; run as root (or: sudo apt-get install -y postgresql)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "setup_postgres: initdb still missing after apt-get" >&2; exit 1; }
echo "setup_postgres: installed $(ls -d /usr/lib/postgresql/*/bin | head -1)"
