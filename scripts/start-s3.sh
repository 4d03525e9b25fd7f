#!/usr/bin/env bash
# Start a throwaway single-node Ceph RGW (S3 API) on 127.0.0.1 for tests and CI.
#
# One mon, one in-memory OSD (memstore: data is lost on stop) and one radosgw, auth disabled,
# all bound to 127.0.0.1. Installs the Debian packages first if they are missing (needs root).
# Idempotent: if our RGW is already up, it only prints the endpoint again.
#
# Writes $CEPH_DIR/s3.env (KEY=VALUE lines, nothing is exported here):
#   FOLEY_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
# Use it with:  set -a; . "$CEPH_DIR/s3.env"; set +a
# Prints the endpoint URL as the last line of stdout; progress goes to stderr.
#
# Settings (environment): CEPH_DIR (/tmp/foley-ceph), RGW_PORT (7480), CEPH_MON_PORT (6789),
# S3_ACCESS_KEY, S3_SECRET_KEY (test-only defaults below). Stop with scripts/stop-s3.sh.
set -Eeuo pipefail

CEPH_DIR=${CEPH_DIR:-/tmp/foley-ceph}
RGW_PORT=${RGW_PORT:-7480}
MON_PORT=${CEPH_MON_PORT:-6789}
ACCESS_KEY=${S3_ACCESS_KEY:-FOLEYTESTACCESSKEY}
SECRET_KEY=${S3_SECRET_KEY:-foley-test-secret-key-not-for-production}
ENDPOINT="http://127.0.0.1:${RGW_PORT}"
ENV_FILE="$CEPH_DIR/s3.env"
HERE=$(cd "$(dirname "$0")" && pwd)

log() { echo "start-s3: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'log "ERROR: line $LINENO: \"$BASH_COMMAND\" failed (exit $?); logs: $CEPH_DIR/log"' ERR

# True when something answers HTTP on the RGW port (bash /dev/tcp: no curl needed).
http_up() {
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
        IFS= read -r line <&3
        [[ $line == HTTP/* ]]' _ "$RGW_PORT" 2>/dev/null
}

pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Poll "$@" every 0.5 s until it succeeds or $secs pass.
wait_for() {
    local secs=$1 what=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        ((SECONDS < deadline)) || die "$what did not come up within ${secs}s (logs: $CEPH_DIR/log)"
        sleep 0.5
    done
}

install_packages() {
    local missing=()
    for p in radosgw ceph-mon ceph-osd; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) == 0 ]] || die "packages missing (${missing[*]}) and not root: run as root or install them first"
    log "installing ${missing[*]} (apt, ~20 s)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends radosgw ceph-mon ceph-osd >&2
}

write_conf() {
    cat >"$CEPH_DIR/ceph.conf" <<EOF
[global]
fsid = $1
mon host = v1:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon max pg per osd = 1000
mon allow pool size one = true
osd objectstore = memstore
memstore device bytes = 2147483648
run dir = $CEPH_DIR/run
admin socket = $CEPH_DIR/run/\$name.asok
log file = $CEPH_DIR/log/\$name.log
pid file = $CEPH_DIR/run/\$name.pid
mon data = $CEPH_DIR/mon/\$name
osd data = $CEPH_DIR/osd/\$name
keyring = $CEPH_DIR/keyring
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $CEPH_DIR/rgw
EOF
}

start_cluster() {
    local conf=(-c "$CEPH_DIR/ceph.conf") fsid osd_uuid osd_id
    rm -rf "$CEPH_DIR"
    # The OSD data dir must be named after the daemon (osd.0), else MemStore asserts.
    mkdir -p "$CEPH_DIR"/{run,log,mon,osd/osd.0,rgw}
    fsid=$(cat /proc/sys/kernel/random/uuid)
    write_conf "$fsid"

    log "starting mon"
    ceph-authtool --create-keyring "$CEPH_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    monmaptool --create --add a "v1:127.0.0.1:$MON_PORT" --fsid "$fsid" "$CEPH_DIR/monmap" >/dev/null
    ceph-mon "${conf[@]}" --mkfs -i a --monmap "$CEPH_DIR/monmap" --keyring "$CEPH_DIR/keyring" 2>>"$CEPH_DIR/log/start.err"
    ceph-mon "${conf[@]}" -i a 2>>"$CEPH_DIR/log/start.err"

    log "starting osd (memstore)"
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    osd_id=$(timeout 30 ceph "${conf[@]}" osd new "$osd_uuid") || die "mon did not answer 'osd new'"
    [[ $osd_id == 0 ]] || die "expected osd id 0, got '$osd_id'"
    ceph-osd "${conf[@]}" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" 2>>"$CEPH_DIR/log/start.err"
    # Now and then (~1 start in 5 here) the OSD exits at once: its first command reaches the
    # fresh mon with a zero fsid ("wrong fsid" in log/osd.0.log). Starting it again works.
    local attempt
    for attempt in 1 2 3; do
        ceph-osd "${conf[@]}" -i "$osd_id" 2>>"$CEPH_DIR/log/start.err" && break
        ((attempt < 3)) || die "osd.0 failed to start 3 times (see $CEPH_DIR/log/osd.0.log)"
        log "osd.0 exited at start (attempt $attempt), starting it again"
        sleep 1
    done
    osd_up() { timeout 5 ceph "${conf[@]}" osd stat 2>/dev/null | grep -q "1 up"; }
    wait_for 30 "osd.0" osd_up

    log "starting radosgw on $ENDPOINT"
    radosgw "${conf[@]}" -n client.rgw.a 2>>"$CEPH_DIR/log/start.err"
    wait_for 40 "radosgw" http_up
    timeout 60 radosgw-admin "${conf[@]}" user create --uid=foley-test --display-name=foley-test \
        --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
}

main() {
    if pid_alive "$CEPH_DIR/run/client.rgw.a.pid" && [[ -s $ENV_FILE ]] && http_up; then
        log "already running"
    else
        install_packages
        CEPH_DIR="$CEPH_DIR" bash "$HERE/stop-s3.sh" >&2  # leftovers of a half-started cluster
        if http_up; then die "port $RGW_PORT is already taken by another program; set RGW_PORT"; fi
        local t0=$SECONDS try
        # A fresh mon now and then refuses its first command (EPERM); a clean second start works.
        for try in 1 2; do
            ( start_cluster ) && break
            ((try < 2)) || die "the cluster did not start twice (see $CEPH_DIR/log)"
            log "cluster start failed (attempt $try), cleaning up and starting again"
            CEPH_DIR="$CEPH_DIR" bash "$HERE/stop-s3.sh" >&2 || true
        done
        printf 'FOLEY_S3_ENDPOINT_URL=%s\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' \
            "$ENDPOINT" "$ACCESS_KEY" "$SECRET_KEY" >"$ENV_FILE.tmp"
        chmod 600 "$ENV_FILE.tmp" && mv "$ENV_FILE.tmp" "$ENV_FILE"
        log "ready in $((SECONDS - t0)) s; env file: $ENV_FILE"
    fi
    echo "$ENDPOINT"
}

main "$@"
