#!/bin/bash
# What parsing candidates in goectp.isolation's bounded readers inside the Dask workers costs a screen: the same
# `goectp screen` (fast, the shared pool's first N candidates, 2 workers, one torch thread) from a checkout BEFORE
# the change and from this one, alternating, REPS times each.
#   bash benchmarks/speed/screen_isolation_overhead.sh BEFORE_CHECKOUT [N] [REPS]
# BEFORE_CHECKOUT: e.g. `git worktree add /tmp/before 5f62208` (the commit before the non-daemonic workers).
set -e
before=$1; n=${2:-3000}; reps=${3:-2}
here=$(cd "$(dirname "$0")/../.." && pwd)
export GOECTP_DATA=${GOECTP_DATA:-$here/../shared/data}
echo "| run | checkout | candidates | scoring s | structures/s | load |"
echo "|---|---|---|---|---|---|"
for rep in $(seq "$reps"); do
  for which in before after; do
    if [ "$which" = before ]; then tree=$before; else tree=$here; fi
    log=$(mktemp)
    (cd /tmp && PYTHONPATH=$tree python -m goectp.cli screen --model fast --limit "$n" --workers 2 --torch-threads 1 \
      --out "/tmp/screen-isolation-$which" --fresh --no-progress > "$log" 2>&1)
    line=$(grep 'this run' "$log")  # "this run: N in S s (R structures/s)"
    secs=$(echo "$line" | sed -E 's/.* in ([0-9.]+) s .*/\1/'); rate=$(echo "$line" | sed -E 's/.*\(([0-9.]+) structures.*/\1/')
    echo "| $rep | $which | $n | $secs | $rate | $(cut -d' ' -f1 /proc/loadavg) |"
    rm -f "$log"
  done
done
