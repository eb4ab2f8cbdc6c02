#!/usr/bin/env bash
# Rebuild the shipped `physics` model (assets/physics) from scratch, in the order its physics.json "command" names:
#   1. the Born-charge members, one per split (benchmarks/experiments/born_charges.py → runs/born);
#   2. SevenNet-l3i5 force constants of every validation/test record of ≤ 30 atoms, in SHARDS processes
#      (physics_force_constants.py → runs/phonons/cache-sevennet-l3i5: the standard cells a prediction computes);
#   3. the combination rule chosen on the validation splits and written to assets/physics/physics.json
#      (physics_stack.py --write), the Born-charge members copied to assets/physics/born-charges (float16);
#   4. the reports the docs quote: the tail, the examples, the re-ranked high-κ list.
# Every step resumes where it stopped (re-run the same command). Nothing here is cached in git: a fresh machine pays
# all of it. Measured on the 2-core development machine (2026-12-05): step 1 about 4-5 s per epoch per split on one
# thread (5 × 120 epochs: ~50 min, two processes at a time ~30 min); step 2 about 2 h on two shards (one thread each;
# ≤ 12 atoms in minutes, 13-20 atoms ~18 s and 21-30 atoms ~24 s per cell; 2026-12-06: 1 h 40 min on two shards
# with the ≤ 8-atom cells already cached); step 3 about 4 min (physics_stack.py 3.5 min). With CUDA the force
# field runs on the GPU (SHARDS=1 there).
#   bash benchmarks/recipes/train_physics.sh             # all steps
#   SHARDS=8 bash benchmarks/recipes/train_physics.sh    # more force-constant processes where cores allow
#   bash benchmarks/recipes/train_physics.sh fit         # steps 3-4 only (runs/born and the cache exist)
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARDS=${SHARDS:-2}
FF=sevennet-l3i5
MAX_SITES=30

if [ "${1:-all}" = all ]; then
  # 1. Born charges: two processes (splits 0-2 and 3-4), one thread each
  python benchmarks/experiments/born_charges.py --splits 0 1 2 --epochs 120 &
  python benchmarks/experiments/born_charges.py --splits 3 4 --epochs 120
  wait
  # 2. force constants, smallest cells first, SHARDS processes
  for ((i = 0; i < SHARDS; i++)); do
    python benchmarks/experiments/physics_force_constants.py --force-field "$FF" --all --heldout-only --order size \
      --max-sites "$MAX_SITES" --shard "$i/$SHARDS" &
  done
  wait
fi
# 3. the rule, chosen on validation (nine candidates, cross-fitted), and the Born-charge members, shipped
python benchmarks/experiments/physics_stack.py --force-field "$FF" --max-sites "$MAX_SITES" --write
python benchmarks/recipes/ship_born_charges.py
python benchmarks/experiments/born_charges.py --evaluate-shipped
# 4. what the docs quote (docs/physics.md, docs/results.md, BENCHMARKS.md)
python benchmarks/experiments/physics_tail.py
GOECTP_CACHE=$(mktemp -d) python benchmarks/experiments/physics_examples.py
GOECTP_CACHE=$(mktemp -d) python benchmarks/recipes/physics_top_list.py --top 60
