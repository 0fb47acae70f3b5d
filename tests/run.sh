#!/usr/bin/env bash
# Runs every pail test: unit, property, conformance (memory, local files, S3), crash, CLI,
# simulation, the HTTP API (in process, on a socket, under the Lambda emulator, fuzzed), the
# SAM template lint and the Python analytics checks. Usage, from anywhere:
#
#   bash tests/run.sh
#
# What it does, so a fresh machine needs only Rust and Python 3:
#   1. a project-local virtualenv (.venv) with tests/requirements.txt (moto, pyarrow, duckdb,
#      cargo-lambda, schemathesis, cfn-lint, Kafka clients, ...)
#   2. cfn-lint on the SAM template (infra/template.yaml); kcat (Debian package) for the Kafka
#      listener tests
#   3. moto's S3 server on 127.0.0.1 (a free port, single-threaded), bucket pail-test
#   4. cargo test for the whole workspace once, with the S3 server, Python and cargo-lambda
#      wired in and required, so every test runs (none skipped, none ignored); the totals over
#      every test binary, and how many ran against the S3 server
#   5. schemathesis against `pail serve` on 127.0.0.1 (tests/http/fuzz_api.sh)
# Every server is stopped on exit, whatever happens.
#
# To run the same suite against MinIO or AWS instead of moto, skip this script and set
# PAIL_TEST_S3_URL=s3://bucket/prefix plus the usual AWS_* variables, then `cargo test`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV="$ROOT/.venv"
STATE=$(mktemp -d "${TMPDIR:-/tmp}/pail-s3.XXXXXX")

say() { printf '\n== %s\n' "$*"; }

say "python test dependencies (.venv)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt

say "SAM template (cfn-lint)"
"$VENV/bin/cfn-lint" infra/template.yaml
echo "infra/template.yaml: no findings"

say "kcat (Kafka listener tests)"
# (sed, not head: head closing the pipe early would fail the script under pipefail)
export DEBIAN_FRONTEND=noninteractive
if command -v kcat >/dev/null 2>&1; then
  kcat -V 2>&1 | sed -n 1p
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 &&
  { apt-get install -y -qq kcat >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq kcat >/dev/null 2>&1; }; }; then
  kcat -V 2>&1 | sed -n 1p
else
  echo "*** WARNING: kcat could not be installed: its part of tests/tests/kafka.rs is SKIPPED ***"
fi
if command -v kcat >/dev/null 2>&1; then export PAIL_REQUIRE_KCAT=1; fi

say "build"
cargo build --workspace --all-targets --quiet

say "S3 server (moto on 127.0.0.1)"
cleanup() { bash tests/s3/stop.sh "$STATE" >/dev/null 2>&1 || true; rm -rf "$STATE"; }
trap cleanup EXIT
bash tests/s3/start.sh "$STATE"
# shellcheck disable=SC1091
source "$STATE/env"
export PAIL_REQUIRE_S3=1 PAIL_REQUIRE_PYTHON=1
export PAIL_PYTHON="$VENV/bin/python"
export PAIL_BIN="$ROOT/target/debug/pail" PAIL_HTTP_BIN="$ROOT/target/debug/pail-http"
export PAIL_CARGO_LAMBDA="$VENV/bin/cargo-lambda" PAIL_REQUIRE_LAMBDA=1

say "every test (the S3 store at $AWS_ENDPOINT_URL)"
LOG="$STATE/tests.log"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e

# Totals over every "test result:" line (one per test binary and doc-test run).
read -r binaries passed failed ignored < <(awk '
  /^test result:/ {
    n++
    for (i = 1; i < NF; i++) {
      if ($(i + 1) ~ /^passed/) p += $i
      if ($(i + 1) ~ /^failed/) f += $i
      if ($(i + 1) ~ /^ignored/) g += $i
    }
  }
  END { print n + 0, p + 0, f + 0, g + 0 }' "$LOG")
# The S3 store tests are the s3:: modules of pail-tests (on_every_store!, s3_errors).
s3=$(grep -cE '^test s3::[^ ]+ \.\.\. ok$' "$LOG" || true)
say "totals"
echo "$passed passed, $failed failed, $ignored ignored, in $binaries test binaries;" \
  "$s3 of the passed ran against the S3 server at $AWS_ENDPOINT_URL"
grep -E '^test .* (FAILED|ignored)$' "$LOG" || true
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
  echo "tests failed (cargo test exit $status)" >&2
  exit 1
fi
if [ "$ignored" -ne 0 ]; then
  echo "$ignored tests are ignored: every test must run here (remove #[ignore] or run it)" >&2
  exit 1
fi
if [ "$s3" -eq 0 ] || [ "$passed" -eq 0 ]; then
  echo "no tests ran against the S3 server" >&2
  exit 1
fi

say "the HTTP API fuzzed from its OpenAPI document (schemathesis against pail serve)"
bash tests/http/fuzz_api.sh "$PAIL_BIN" "$VENV"
say "all tests passed"
