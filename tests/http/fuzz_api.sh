#!/usr/bin/env bash
# Fuzz the HTTP API from its own OpenAPI document with schemathesis, against a `pail serve` on
# 127.0.0.1 (a free port, a temporary store, a bearer token). Fails on any 5xx, any status
# code the document does not list for the operation, and any response that contradicts its
# schema or content type. Bounded: about FUZZ_EXAMPLES cases per operation (default 30).
#
#   tests/http/fuzz_api.sh PAIL_BIN VENV
#
# The server is stopped on exit, whatever happens.
set -euo pipefail

die() { echo "fuzz_api.sh: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: fuzz_api.sh PAIL_BIN VENV"
PAIL=$1
VENV=$2
STATE=$(mktemp -d "${TMPDIR:-/tmp}/pail-fuzz.XXXXXX")
TOKEN=fuzz-$RANDOM$RANDOM
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$STATE"
}
trap cleanup EXIT

PAIL_TOKEN=$TOKEN "$PAIL" --store "$STATE/store" serve --listen 127.0.0.1:0 \
  </dev/null >/dev/null 2>"$STATE/serve.log" &
PID=$!
# shellcheck source=../await_line.sh
source "$(dirname "${BASH_SOURCE[0]}")/../await_line.sh"
URL=$(await_line "$STATE/serve.log" 's/^pail serve: listening on \(http:[^ ]*\)$/\1/p' "$PID" "pail serve")

# A topic with records, so generated requests can also hit real data.
AUTH="Authorization: Bearer $TOKEN"
"$VENV/bin/python" - "$URL" "$AUTH" <<'PY'
import json, sys, urllib.request
url, auth = sys.argv[1], sys.argv[2].split(": ", 1)
def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", auth[0]: auth[1]})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status in (200, 201), r.status
post("/v1/topics", {"name": "t", "partitions": 2})
post("/v1/topics/t/records", {"records": [{"key": "k", "value": "v"}, {"value": "/wA=", "value_encoding": "base64"}]})
PY

"$VENV/bin/schemathesis" run "$URL/openapi.json" \
  --header "$AUTH" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "${FUZZ_EXAMPLES:-30}" \
  --seed "${FUZZ_SEED:-20261125}" \
  --workers 1 \
  --request-timeout 30 \
  --report-dir "$STATE/report"
