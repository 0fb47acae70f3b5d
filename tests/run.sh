#!/usr/bin/env bash
# Runs every pail test: unit, property, conformance (memory, local files, S3), crash, CLI,
# simulation, the HTTP API (in process, on a socket, under the Lambda emulator, fuzzed), the
# SAM template lint and the Python analytics checks. Usage, from anywhere:
#
#   bash tests/run.sh
#
# What it does, so a fresh machine needs only Rust and Python 3:
#   1. a project-local virtualenv (.venv) with tests/requirements.txt (moto, pyarrow, duckdb,
#      cargo-lambda, schemathesis, cfn-lint, ...)
#   2. cfn-lint on the SAM template (infra/template.yaml)
#   3. moto's S3 server on 127.0.0.1 (a free port, single-threaded), bucket pail-test
#   4. cargo test for the workspace, with the S3 server, Python and cargo-lambda wired in and
#      required (tests/tests/http_lambda.rs starts `cargo lambda watch` on 127.0.0.1 itself)
#   5. the S3 part again on its own, so its test count is printed
#   6. kcat (Debian package) for the Kafka listener tests
#   7. schemathesis against `pail serve` on 127.0.0.1 (tests/http/fuzz_api.sh)
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

say "all tests except the S3 store"
cargo test --workspace --quiet -- --skip s3::

say "the S3 store (moto at $AWS_ENDPOINT_URL)"
LOG="$STATE/s3-tests.log"
cargo test -p pail-tests --quiet -- s3:: 2>&1 | tee "$LOG"
passed=$(grep -Eo '[0-9]+ passed' "$LOG" | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$LOG" | awk '{s += $1} END {print s + 0}')
echo "S3 run: $passed tests passed, $failed failed, against $AWS_ENDPOINT_URL"
[ "$passed" -gt 0 ] && [ "$failed" -eq 0 ]

say "the HTTP API fuzzed from its OpenAPI document (schemathesis against pail serve)"
bash tests/http/fuzz_api.sh "$PAIL_BIN" "$VENV"
say "all tests passed"
