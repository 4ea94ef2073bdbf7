#!/usr/bin/env bash
# One prepared run for a lent GPU machine (see README "Measured where"): model latency /
# AMP throughput benchmark, then the free-vs-anchored query ablation trained in parallel on
# synthetic cities rendered by the machine's CPU cores. Not part of CI.
#
# Runs from the repo root with the machine's own python3 (PyTorch, numba, OpenCV there);
# pymap3d travels as a wheel in .whl/. Results go to $OUT (8 files at most).
# Knobs (env): STEPS, MINUTES (wall budget per run), CITIES (training cities), WORKERS.
set -euo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}
STEPS=${STEPS:-2000}
MINUTES=${MINUTES:-3.5}
CITIES=${CITIES:-16}
WORKERS=${WORKERS:-7}
PY=${PY:-python3}
WORK=${WORK:-/tmp/ciper_gpu}
mkdir -p "$OUT" "$WORK"
if compgen -G '.whl/*.whl' >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=$PWD:/tmp/site
else
  export PYTHONPATH=$PWD
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  $PY -c 'import torch, numba, cv2; print("torch", torch.__version__, "cuda",
torch.cuda.is_available(), "numba", numba.__version__, "cv2", cv2.__version__)'
  nproc
  t0=$(date +%s)
  seeds="$(seq 1000 $((999 + CITIES))) 500 0"
  echo "$seeds" | tr ' ' '\n' | xargs -P "$(nproc)" -I{} $PY -m ciper_ros.cli synth city \
    --seed {} --size-m 500 --zooms 19 --out "$WORK/cities/{}" >/dev/null
  echo "cities: $(( $(date +%s) - t0 )) s"
  $PY bench/run.py --only model --out "$WORK/bench"
  cp "$WORK/bench/model.json" "$OUT/bench_model.json"
  train_cities=$(seq 1000 $((999 + CITIES)) | sed "s#^#$WORK/cities/#" | paste -sd, -)
  t0=$(date +%s)
  $PY -m ciper_ros.cli ablate query-modes --config config/train/synthetic_ciper_t.yaml \
    "cities=[$train_cities]" "val_cities=[$WORK/cities/500]" max_steps="$STEPS" \
    warmup_steps=200 max_minutes="$MINUTES" num_workers="$WORKERS" val_every=200 \
    val_samples=96 ckpt_every=250 log_every=50 \
    --test-city "$WORK/cities/0" --n 200 --parallel --out "$WORK/ablate"
  echo "ablation: $(( $(date +%s) - t0 )) s"
  for m in anchored free; do cp "$WORK/ablate/$m/metrics.jsonl" "$OUT/${m}_metrics.jsonl"; done
  cp "$WORK/ablate/query_modes.json" "$WORK/ablate/query_modes.md" \
    "$WORK/ablate/query_modes.png" "$OUT/"
  $PY - "$WORK/ablate/anchored/last.pt" "$OUT/anchored_fp16.pt" <<'PYEOF'
import sys
from ciper_ros.model.build import load_checkpoint, load_model, save_checkpoint
blob = load_checkpoint(sys.argv[1])
save_checkpoint(sys.argv[2], load_model(sys.argv[1]), step=blob['step'],
                metrics=blob.get('metrics'), half=True,
                extra={'train_config': blob.get('train_config'),
                       'elapsed_s': blob.get('elapsed_s')})
print('saved', sys.argv[2])
PYEOF
} 2>&1 | tee "$OUT/log.txt"
