#!/usr/bin/env bash
# Runs the test suite hermetically: its own Prefect home, telemetry off, no network.
#   bash scripts/test.sh [--with-s3] [pytest args...]
# --with-s3 starts a real S3 server (Ceph RGW on 127.0.0.1, installed from Debian's packages if
# missing) for the storage integration tests and stops it afterwards. It also installs Debian's headless
# Chromium when missing (the run report's browser test), like Ceph: as root, with apt.
set -euo pipefail
cd "$(dirname "$0")/.."
with_s3=0
if [[ "${1:-}" == "--with-s3" ]]; then with_s3=1; shift; fi
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_SERVER_UI_ENABLED=false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=90
export PREFECT_HOME="${PREFECT_HOME:-$(mktemp -d)/prefect-home}"
if (( with_s3 )); then
  command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
  bash scripts/start-s3.sh
  set -a; . "${CEPH_DIR:-/tmp/foley-ceph}/s3.env"; set +a
  trap 'bash scripts/stop-s3.sh >/dev/null 2>&1 || true' EXIT
fi
status=0
.venv/bin/python -m pytest "$@" || status=$?
exit $status
