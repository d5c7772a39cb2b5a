#!/usr/bin/env bash
# The paper's ablation (Table 3) on our phantoms: train on the five seen organs with each strategy,
# evaluate seen and unseen organs on held-out phantoms. Usage:
#   docs/experiments/paper_ablation.sh TRAIN_DATA TEST_DATA OUT [STEPS] [EVAL_SHARD] [ARCH]
# TRAIN_DATA: seganypet phantom phantoms_train --cases 100 --seed 1
# TEST_DATA:  seganypet phantom phantoms_test --cases 1 --test-cases 20 --seed 2025
set -euo pipefail
train_data=$1 test_data=$2 out=$3 steps=${4:-200} shard=${5:-0/4} arch=${6:-tiny}
organs() { python -c "import SegAnyPETLib.labels as l; print(','.join(l.$1))"; }
seen=$(organs SEEN_ORGANS) unseen=$(organs UNSEEN_ORGANS)
# The tiny ViT (the paper's encoder family; ARCH tiny_conv: the bundled network) with the bundled
# recipe otherwise, 4 click iterations. EVAL_SHARD 0/1 evaluates every test case. The new checkpoints
# carry no calibrated config, so they are evaluated with the official preset; the table in
# docs/training.md was measured at commit c87b47d with the session of then (docs/experiments/LOG.md).
for strategy in finetune consistency cpcl; do
    seganypet train --config bundled_tiny --arch "$arch" --set click_iterations=4 \
        --data "$train_data" --targets "$seen" --strategy "$strategy" \
        --max-steps "$steps" --set val_every="$steps" --set "milestone_steps=[$((steps * 8 / 10))]" \
        --quiet-progress --out "$out/$strategy"
    seganypet evaluate --model "$out/$strategy/last.pt" --data "$test_data" --targets "$seen,$unseen" \
        --clicks 1,3,5 --shard "$shard" --out "$out/$strategy/eval"
done
python - "$out" <<'PY'
"""One table: mean Dice of the seen and unseen organs per strategy and click count."""
import sys
from pathlib import Path
from SegAnyPETLib.evaluate import read_results_csv
from SegAnyPETLib.labels import SEEN_ORGANS
print("| strategy | seen 1 | seen 3 | seen 5 | unseen 1 | unseen 3 | unseen 5 |\n|---|---|---|---|---|---|---|")
for strategy in ("finetune", "consistency", "cpcl"):
    results = [r for path in sorted((Path(sys.argv[1]) / strategy / "eval").glob("results*.csv")) for r in read_results_csv(path)]
    cells = []
    for seen in (True, False):
        for clicks in (1, 3, 5):
            values = [r.dice for r in results if r.clicks == clicks and (r.target in SEEN_ORGANS) == seen]
            cells.append(f"{sum(values) / len(values):.3f}" if values else "-")
    print(f"| {strategy} | " + " | ".join(cells) + " |")
PY
