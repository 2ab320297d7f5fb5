#!/usr/bin/env bash
# One set-up step as a person reads it: the command's own output (apt, pip, Maven, cmake) goes
# to the set-up log; the terminal gets one line (the step, how long it took), or on failure
# the log's last lines and its path.
#   usage: infra/step.sh "what it does" command [args...]
set -uo pipefail
log="${STEP_LOG:-.kinfer/setup.log}"
mkdir -p "$(dirname "$log")"
what="$1"
shift
began=$(date +%s%N)
printf '\n== %s  %s\n$ %s\n' "$(date -Is)" "$what" "$*" >>"$log"
"$@" >>"$log" 2>&1
rc=$?
ms=$((($(date +%s%N) - began) / 1000000))
took=$(printf '%d.%01ds' $((ms / 1000)) $((ms % 1000 / 100)))
if [ "$rc" -eq 0 ]; then
  printf '  %-52s ok %8s\n' "$what" "$took"
  exit 0
fi
printf '  %-52s FAILED (exit %d) after %s; the last lines of %s:\n' "$what" "$rc" "$took" "$log" >&2
tail -n 40 "$log" | sed 's/^/    /' >&2
exit "$rc"
