#!/usr/bin/env bash
# Retrain the shipped default (`combined`) from scratch: its five families, each 5 splits × 40 epochs (three trained
# on the static tensor; two decomposed, an ε∞ model plus an ionic-only one per member), then the exports, the sums,
# the combination and the calibrations. The commands are the ones on the model cards; every step resumes
# where it stopped (re-run the same command). `WORKERS` splits train at once (Dask): 1 by default, which is about 2x
# faster than 2 on a 2-core machine (BENCHMARKS.md, "Training splits in parallel on Dask"); 5 where cores allow.
#   bash benchmarks/recipes/train_default.sh            # all steps
#   bash benchmarks/recipes/train_default.sh combine    # only the export + combination (the runs exist)
# A smoke run of the whole pipeline (1 epoch each; 16 min on this 2-core machine) that leaves the shipped assets alone:
#   GOECTP_ASSETS=/tmp/smoke/assets RUNS=/tmp/smoke/runs EPOCHS=1 PRETRAIN_EPOCHS=1 bash benchmarks/recipes/train_default.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-runs/default}
WORKERS=${WORKERS:-1}
EPOCHS=${EPOCHS:-40}
PRETRAIN_EPOCHS=${PRETRAIN_EPOCHS:-100}
MODELS=${GOECTP_ASSETS:-assets}/models  # where the ensembles go (goectp resolves names from $GOECTP_ASSETS too)
mkdir -p "$MODELS"
fine_tune=(--splits 0 1 2 3 4 --workers "$WORKERS" --epochs "$EPOCHS" --no-progress)

if [ "${1:-all}" = all ]; then
  # 1. pretrained-bulk-modulus-chgnet: CHGNet features, bulk-modulus pretraining, one message layer
  python benchmarks/experiments/pretraining.py --splits 0 1 2 3 4 --routes pretrained_chgnet --pretrain-dataset log-bulk-modulus \
    --pretrain-epochs "$PRETRAIN_EPOCHS" --epochs "$EPOCHS" --threads 1 --runs "$RUNS/pretrain"
  # 2. pretrained-bulk-modulus-layers2: bulk-modulus pretraining of a two-layer backbone, then fine-tuning
  goectp pretrain --dataset log-bulk-modulus --layers 2 --epochs "$PRETRAIN_EPOCHS" --threads 1 \
    --out "$RUNS/pretrain-bm-layers2"
  goectp train --init-from "$RUNS/pretrain-bm-layers2/best.pt" --layers 2 "${fine_tune[@]}" \
    --out "$RUNS/pretrained-bm-layers2"
  # 3. pretrained-bulk-modulus-chgnet-layers2: the same with CHGNet features
  goectp pretrain --dataset log-bulk-modulus --node-features chgnet --layers 2 --epochs "$PRETRAIN_EPOCHS" \
    --threads 1 --out "$RUNS/pretrain-bmc-layers2"
  goectp train --init-from "$RUNS/pretrain-bmc-layers2/best.pt" --node-features chgnet --layers 2 \
    "${fine_tune[@]}" --out "$RUNS/pretrained-bmc-layers2"
  # 4. electronic: the ε∞ model of the recipe of 3 (shipped as `electronic`, the ε∞ part of both decomposed families)
  goectp train --init-from "$RUNS/pretrain-bmc-layers2/best.pt" --node-features chgnet --layers 2 --target electronic \
    "${fine_tune[@]}" --out "$RUNS/electronic"
  # 5. and 6. ionic-only models of the recipes of 3 and 2 (the ionic parts of the decomposed families)
  goectp train --init-from "$RUNS/pretrain-bmc-layers2/best.pt" --node-features chgnet --layers 2 --target ionic \
    "${fine_tune[@]}" --out "$RUNS/ionic-bmc-layers2"
  goectp train --init-from "$RUNS/pretrain-bm-layers2/best.pt" --layers 2 --target ionic "${fine_tune[@]}" \
    --out "$RUNS/ionic-bm-layers2"
fi

# --float16: weight matrices stored as float16, as shipped (assets ≤ 25 MB; tests/test_float16_storage.py)
goectp ensemble export "$RUNS/pretrain/pretrained_chgnet-log-bulk-modulus-e$PRETRAIN_EPOCHS" --float16 \
  --assets "$MODELS" --name pretrained-bulk-modulus-chgnet --notes docs/model_notes/pretrained-bulk-modulus-chgnet.md
goectp ensemble export "$RUNS/pretrained-bm-layers2" --assets "$MODELS" --float16 \
  --name pretrained-bulk-modulus-layers2 \
  --notes docs/model_notes/pretrained-bulk-modulus-layers2.md
goectp ensemble export "$RUNS/pretrained-bmc-layers2" --assets "$MODELS" --float16 \
  --name pretrained-bulk-modulus-chgnet-layers2 \
  --notes docs/model_notes/pretrained-bulk-modulus-chgnet-layers2.md
goectp ensemble export "$RUNS/electronic" --assets "$MODELS" --name electronic --float16 \
  --notes docs/model_notes/electronic.md
for recipe in bmc-layers2 bm-layers2; do
  goectp ensemble export "$RUNS/ionic-$recipe" --name "ionic-$recipe" --assets "$RUNS/ensembles" \
    --no-calibrate --float16
done
# the decomposed families (their cards in assets/models are written by hand: update the sha256 column)
goectp sum electronic "$RUNS/ensembles/ionic-bmc-layers2" \
  --out "$MODELS/decomposed-bulk-modulus-chgnet-layers2"
goectp sum electronic "$RUNS/ensembles/ionic-bm-layers2" \
  --out "$MODELS/decomposed-bulk-modulus-layers2"
for family in decomposed-bulk-modulus-chgnet-layers2 decomposed-bulk-modulus-layers2; do
  goectp ensemble float16 "$family" --assets "$(dirname "$MODELS")"   # whatever the sum kept in float32
  goectp ensemble share "$family" --parts-from electronic --assets "$(dirname "$MODELS")"   # ε∞ files held once
  goectp ensemble calibrate --model "$family"
done
goectp ensemble combine pretrained-bulk-modulus-chgnet pretrained-bulk-modulus-layers2 \
  pretrained-bulk-modulus-chgnet-layers2 decomposed-bulk-modulus-chgnet-layers2 decomposed-bulk-modulus-layers2 \
  --assets "$MODELS" --name combined --notes docs/model_notes/combined.md
# `default` names `combined` (already so in the repository's assets/models/aliases.json)
[ -f "$MODELS/aliases.json" ] || echo '{"default": "combined"}' > "$MODELS/aliases.json"
