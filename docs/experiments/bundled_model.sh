#!/usr/bin/env bash
# Reproduce the bundled model (Resources/Models/seganypet_demo_tiny.pt) and its evaluation table:
#   docs/experiments/bundled_model.sh WORKDIR
# About 2 hours on a 2-core CPU (phantoms 2 min, training ~2 h, evaluation ~15 min).
set -euo pipefail
work=${1:?usage: bundled_model.sh WORKDIR}
mkdir -p "$work" && cd "$work"
# 100 training phantoms (expert labels on the first 20, noisy labels used on the other 76, 4 held
# out for validation) and 20 test phantoms from a seed never used in training.
[ -d phantoms_train ] || seganypet phantom phantoms_train --cases 100 --seed 1 --workers 2
[ -d phantoms_test ] || seganypet phantom phantoms_test --cases 1 --test-cases 20 --seed 2025
seganypet train --config bundled_tiny --data phantoms_train --out bundled
# The mask threshold for the bundled preset (stored with it), chosen on the 4 validation phantoms the
# run held out (never the test set).
seganypet calibrate --model bundled/best.pt --preset bundled --data phantoms_train --cases 4 --out bundled/calibrated.pt
# Ship it: fp16 weights with the architecture, preprocessing and threshold, and the SHA-256 sidecar.
python - <<'PY'
from SegAnyPETLib.checkpoints import load_model, save_checkpoint
model = load_model("bundled/calibrated.pt", device="cpu")
save_checkpoint("seganypet_demo_tiny.pt", model, half=True, metadata=model.metadata)
PY
sha256sum seganypet_demo_tiny.pt | cut -d' ' -f1 > seganypet_demo_tiny.pt.sha256
# The evaluation table of the model card and README, on the shipped file itself.
seganypet evaluate --model seganypet_demo_tiny.pt --data phantoms_test --clicks 1,3,5 --lesion-targets lesion \
    --baseline threshold --baseline growcut --out evaluation
