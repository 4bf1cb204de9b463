# Shared by the stand-in commands in this folder (sourced, not run).
#
# A stand-in prints the recorded output of the macOS command it is named after, from
# $CELLWATCH_FIXTURES (default: ../macos beside this folder). A test steers it through files in
# $CELLWATCH_STATE (optional):
#   NAME.out   print this instead of the recording
#   NAME.rc    exit with this status
#   NAME.err   print this on stderr
#   NAME.hang  exists: never finish (until the parent exits)
# and every run appends a line to NAME.runs.
set -u
here=$(cd "$(dirname "$0")" && pwd)
fix=${CELLWATCH_FIXTURES:-$here/../macos}
state=${CELLWATCH_STATE:-}
name=$(basename "$0")

hang() {
  while kill -0 "$PPID" 2>/dev/null; do sleep 0.1; done
  exit 0
}

# Prints the steered or recorded output ($1: recording file name) and exits.
replay() {
  if [ -n "$state" ]; then
    echo "$*" >> "$state/$name.runs"
    [ -e "$state/$name.hang" ] && hang
    [ -e "$state/$name.err" ] && cat "$state/$name.err" >&2
    if [ -e "$state/$name.out" ]; then
      cat "$state/$name.out"
      exit "$(cat "$state/$name.rc" 2>/dev/null || echo 0)"
    fi
    [ -e "$state/$name.rc" ] && exit "$(cat "$state/$name.rc")"
  fi
  cat "$fix/$1"
  exit 0
}
