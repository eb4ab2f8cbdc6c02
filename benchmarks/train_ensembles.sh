#!/usr/bin/env bash
# The paper's protocol (200 epochs, 5 splits) for the best route (bulk-modulus pretraining + CHGNet features) and
# the plain fast model, as two single-threaded queues on a 2-core machine. Resumable: re-run the same command.
#   bash benchmarks/paper200.sh A   # pretraining, then best-route splits 0 2 4, then plain splits 2 4
#   bash benchmarks/paper200.sh B   # plain split 0, best-route splits 1 3, then plain splits 1 3
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/paper200}
EPOCHS=${EPOCHS:-200}
common=(--epochs "$EPOCHS" --pretrain-dataset log-bulk-modulus --pretrain-epochs 100 --threads 1 --runs "$RUNS")
best() { python benchmarks/pretraining.py --routes pretrained_chgnet --splits "$@" "${common[@]}"; }
plain() { python benchmarks/pretraining.py --routes scratch --splits "$@" "${common[@]}"; }
case "${1:-A}" in
  A) best 0 2 4; plain 2 4 ;;
  B) plain 0
     until [ -f "$RUNS/pretrain-log-bulk-modulus-e100-chgnet/metrics.json" ]; do sleep 30; done
     best 1 3; plain 1 3 ;;
esac
