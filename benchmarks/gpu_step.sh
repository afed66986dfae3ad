# Sourced by gpu_reproduce.sh and gpu_session.sh: `step LIMIT_S NAME CMD...` runs one
# step, never longer than LIMIT_S and never stopping the script; $failed counts the failed ones.
# A LIMIT_S of 0 skips the step (gpu_session.sh fits the scripts into one device call so).
failed=0

step() {
  local limit=$1 name=$2
  shift 2
  echo
  if [ "$limit" -eq 0 ]; then
    echo "== $name: skipped (limit 0)"
    return 0
  fi
  echo "== $name ($(date -u +%T), limit ${limit} s)"
  local t0=$SECONDS
  timeout -k 10 "$limit" "$@"
  local rc=$?
  echo "-- $name: exit $rc after $((SECONDS - t0)) s"
  if [ "$rc" -ne 0 ]; then failed=$((failed + 1)); fi
}
