#!/usr/bin/env bash
# The paper's ablation (Table 3) on our phantoms: train on the five seen organs with each strategy,
# evaluate seen and unseen organs on held-out phantoms. Usage:
#   docs/experiments/paper_ablation.sh TRAIN_DATA TEST_DATA OUT [STEPS] [EVAL_SHARD]
# TRAIN_DATA: seganypet phantom phantoms_train --cases 100 --seed 1
# TEST_DATA:  seganypet phantom phantoms_test --cases 1 --test-cases 20 --seed 2025
set -euo pipefail
train_data=$1 test_data=$2 out=$3 steps=${4:-200} shard=${5:-0/4}
seen=liver,kidney_left,kidney_right,heart,spleen
unseen=aorta,prostate,lung_lower_lobe_left,lung_lower_lobe_right,lung_upper_lobe_left,lung_upper_lobe_right,lung_middle_lobe_right
for strategy in finetune consistency cpcl; do
    seganypet train --config bundled_tiny --data "$train_data" --targets "$seen" --strategy "$strategy" \
        --max-steps "$steps" --set val_every="$steps" --set "milestone_steps=[$((steps * 8 / 10))]" \
        --quiet-progress --out "$out/$strategy"
    seganypet evaluate --model "$out/$strategy/last.pt" --data "$test_data" --targets "$seen,$unseen" \
        --clicks 1,3,5 --shard "$shard" --out "$out/$strategy/eval"
done
python - "$out" <<'PY'
"""One table: mean Dice of the seen and unseen organs per strategy and click count."""
import csv, sys
from pathlib import Path
seen = {"liver", "kidney_left", "kidney_right", "heart", "spleen"}
print("| strategy | seen 1 | seen 3 | seen 5 | unseen 1 | unseen 3 | unseen 5 |\n|---|---|---|---|---|---|---|")
for strategy in ("finetune", "consistency", "cpcl"):
    rows = []
    for path in sorted((Path(sys.argv[1]) / strategy / "eval").glob("results*.csv")):
        rows += list(csv.DictReader(open(path)))
    cells = []
    for group in (True, False):
        for clicks in ("1", "3", "5"):
            values = [float(r["dice"]) for r in rows if r["clicks"] == clicks and (r["target"] in seen) == group]
            cells.append(f"{sum(values) / len(values):.3f}" if values else "-")
    print(f"| {strategy} | " + " | ".join(cells) + " |")
PY
