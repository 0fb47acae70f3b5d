#!/usr/bin/env bash
# Start moto's S3 server on 127.0.0.1 (free port) with bucket `pail-test`.
#
#   tests/s3/start.sh STATE_DIR      # then: source STATE_DIR/env
#   tests/s3/stop.sh  STATE_DIR
#
# Writes STATE_DIR/moto.pid, STATE_DIR/port, STATE_DIR/env (exports for the
# Rust tests), STATE_DIR/moto.log (server stderr: request log, tracebacks).
# Needs the venv from tests/requirements.txt (default <repo>/.venv, or $PAIL_VENV).
# On any failure: one line "start.sh: ..." on stderr, exit 1, nothing left running.
set -euo pipefail

die() { echo "start.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: start.sh STATE_DIR"
STATE=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY="${PAIL_VENV:-$ROOT/.venv}/bin/python"
[ -x "$PY" ] || die "no $PY; run: python3 -m venv $ROOT/.venv && $ROOT/.venv/bin/pip install -r $ROOT/tests/requirements.txt"

mkdir -p "$STATE" 2>/dev/null || die "cannot create $STATE"
STATE=$(cd "$STATE" && pwd)
if [ -f "$STATE/moto.pid" ] && kill -0 "$(cat "$STATE/moto.pid")" 2>/dev/null; then
  die "a server is already running for $STATE (pid $(cat "$STATE/moto.pid")); run stop.sh first"
fi
rm -f "$STATE/moto.pid" "$STATE/port" "$STATE/env" "$STATE/moto.out"

# stdin/stdout/stderr all redirected, so a caller capturing our output
# (e.g. $(start.sh ...)) is not held open by the server.
"$PY" "$HERE/moto_server.py" --port 0 </dev/null >"$STATE/moto.out" 2>"$STATE/moto.log" &
PID=$!
# Until we succeed, kill the server on any exit.
trap 'kill "$PID" 2>/dev/null || true' EXIT

# shellcheck source=../await_line.sh
source "$HERE/../await_line.sh"
PORT=$(LOG_FILE="$STATE/moto.log" await_line "$STATE/moto.out" 's/^PORT=\([0-9][0-9]*\)$/\1/p' "$PID" "moto server")

URL="http://127.0.0.1:$PORT"
# Create the bucket (unsigned path-style PUT; moto routes unsigned requests to S3).
"$PY" - "$URL/pail-test" <<'EOF' || die "could not create bucket pail-test at $URL (see $STATE/moto.log)"
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], method="PUT", data=b"")
with urllib.request.urlopen(req, timeout=30) as r:
    assert r.status == 200, r.status
EOF

echo "$PID" >"$STATE/moto.pid"
echo "$PORT" >"$STATE/port"
cat >"$STATE/env.tmp" <<EOF
export AWS_ENDPOINT_URL=$URL
export AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export PAIL_TEST_S3_URL=s3://pail-test
EOF
mv "$STATE/env.tmp" "$STATE/env"
trap - EXIT
echo "moto S3 at $URL (pid $PID); source $STATE/env" >&2
