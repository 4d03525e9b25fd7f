#!/usr/bin/env bash
# Runs the test suite hermetically: its own Prefect home, telemetry off, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_SERVER_UI_ENABLED=false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=90
export PREFECT_HOME="${PREFECT_HOME:-$(mktemp -d)/prefect-home}"
exec .venv/bin/python -m pytest "$@"
