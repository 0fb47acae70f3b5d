# Sourced by the scripts that start a server in the background and learn its port from a line
# it prints (tests/s3/start.sh, tests/http/fuzz_api.sh).
#
#   await_line FILE SED_SCRIPT PID WHAT    prints what SED_SCRIPT extracts from FILE
#
# Waits up to 30 s for the line; fails (via the caller's `die`) if the process PID exits first
# or nothing comes, quoting the end of LOG_FILE when set.
await_line() {
  local file=$1 script=$2 pid=$3 what=$4 value=
  for _ in $(seq 300); do   # 300 x 0.1 s = 30 s
    value=$(sed -n "$script" "$file")
    [ -n "$value" ] && { echo "$value"; return 0; }
    kill -0 "$pid" 2>/dev/null || die "$what exited early: $(tail -n 3 "${LOG_FILE:-$file}")"
    sleep 0.1
  done
  die "$what printed nothing within 30 s (see ${LOG_FILE:-$file})"
}
