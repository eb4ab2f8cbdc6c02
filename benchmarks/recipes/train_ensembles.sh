#!/usr/bin/env bash
# The paper's protocol (5 random 80/10/10 splits, Huber, AdamW, polynomial decay; 200 epochs in the paper) for the
# best route (bulk-modulus pretraining + CHGNet features), as two single-threaded queues on a 2-core machine.
# Resumable: re-run the same command. EPOCHS (default 200, the paper's) sets the fine-tuning length.
#   EPOCHS=100 bash benchmarks/recipes/train_ensembles.sh A   # pretraining, then splits 0 2 4
#   EPOCHS=100 bash benchmarks/recipes/train_ensembles.sh B   # waits for the pretraining, then splits 1 3
# On a machine with more cores, `goectp train --splits 0 1 2 3 4 --workers 5` runs the splits in parallel on Dask.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-runs/ensembles}
EPOCHS=${EPOCHS:-200}
common=(--epochs "$EPOCHS" --pretrain-dataset log-bulk-modulus --pretrain-epochs 100 --threads 1 --runs "$RUNS")
best() { python benchmarks/experiments/pretraining.py --routes pretrained_chgnet --splits "$@" "${common[@]}"; }
case "${1:-A}" in
  A) best 0 2 4 ;;
  B) until [ -f "$RUNS/pretrain-log-bulk-modulus-e100-chgnet/metrics.json" ]; do sleep 30; done
     best 1 3 ;;
esac
