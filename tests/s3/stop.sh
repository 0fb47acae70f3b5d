#!/usr/bin/env bash
# Stop the moto server started by tests/s3/start.sh STATE_DIR.
# Removes STATE_DIR/{moto.pid,port,env} (keeps moto.log). Exit 0 if the server is
# stopped (or had already exited); otherwise one line on stderr, exit 1.
set -euo pipefail

die() { echo "stop.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: stop.sh STATE_DIR"
STATE=$1
PIDFILE="$STATE/moto.pid"
[ -f "$PIDFILE" ] || die "no $PIDFILE (was start.sh run with this STATE_DIR?)"
PID=$(cat "$PIDFILE")
[[ "$PID" =~ ^[0-9]+$ ]] || die "bad pid '$PID' in $PIDFILE"
cleanup() { rm -f "$PIDFILE" "$STATE/port" "$STATE/env"; }

# Only signal the pid if it is still our moto_server.py (pids get reused).
if ! grep -qs moto_server.py "/proc/$PID/cmdline"; then
  cleanup
  echo "stop.sh: moto server (pid $PID) was not running" >&2
  exit 0
fi

kill -TERM "$PID" 2>/dev/null || true
for _ in $(seq 50); do   # up to 5 s for a clean exit
  kill -0 "$PID" 2>/dev/null || { cleanup; exit 0; }
  sleep 0.1
done
kill -KILL "$PID" 2>/dev/null || true
sleep 0.2
kill -0 "$PID" 2>/dev/null && die "pid $PID survived SIGKILL"
cleanup
