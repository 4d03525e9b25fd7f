#!/usr/bin/env bash
# Stop the test Ceph RGW started by scripts/start-s3.sh and delete its directory (memstore data
# is gone anyway). Idempotent: does nothing when it is not running. Settings: CEPH_DIR.
set -euo pipefail

CEPH_DIR=${CEPH_DIR:-/tmp/foley-ceph}
[[ -d $CEPH_DIR ]] || exit 0

# Stop in reverse start order; the OSD takes 5-8 s to exit on SIGTERM, so wait, then SIGKILL.
for name in client.rgw.a osd.0 mon.a; do
    pidfile="$CEPH_DIR/run/$name.pid"
    [[ -s $pidfile ]] || continue
    pid=$(cat "$pidfile")
    kill -0 "$pid" 2>/dev/null || continue
    # Only signal the process if it really is one of ours (pid files can go stale).
    grep -q -- "$CEPH_DIR/ceph.conf" "/proc/$pid/cmdline" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    echo "stop-s3: stopped $name (pid $pid)"
done
rm -rf "$CEPH_DIR"
