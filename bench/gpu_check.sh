#!/usr/bin/env bash
# The GPU check (issue 17), to run once on a machine with an NVIDIA GPU, from the repository root:
#
#   bash bench/gpu_check.sh
#
# It installs voxpop with the `gpu` extra (tensorflow[and-cuda] + onnxruntime-gpu) into a fresh
# virtualenv, checks that TensorFlow and ONNX Runtime see the GPU, tunes two trials that share it
# (--gpus-per-trial 0.5) on 3,000 built-in tweets, exports them, predicts with --device cuda, and
# writes what ran where to $OUT/gpu_check.json (with the log in $OUT/gpu_check.log and the GPU's
# processes, sampled every second, in $OUT/gpu_apps.csv). Copy the JSON to bench/results/ and
# its figures into bench/RESULTS.md. Exit status 0 only when every step ran on the GPU.
#
# Settings (environment): OUT (default /tmp/gpu-check), WORK (scratch, default /tmp/gpu-check-work),
# PYTHON (default python3), PIP_ARGS (extra pip options: on a machine without a package index,
# "--no-index --find-links DIR" with the wheels of `pip download '.[gpu]'` in DIR; they are about
# 3 GB: TensorFlow and NVIDIA's CUDA libraries).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
WORK=${WORK:-/tmp/gpu-check-work}
PYTHON=${PYTHON:-python3}
PIP_ARGS=${PIP_ARGS:-}
mkdir -p "$OUT" && rm -rf "$WORK" && mkdir -p "$WORK"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1
VENV=$WORK/venv
step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

step "GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"

step "install voxpop[gpu] into $VENV"
"$PYTHON" -m venv "$VENV" || exit 1
# shellcheck disable=SC2086  # PIP_ARGS holds several options
"$VENV/bin/pip" install --quiet $PIP_ARGS --upgrade pip || true
# shellcheck disable=SC2086
"$VENV/bin/pip" install --quiet $PIP_ARGS -e '.[gpu]' || { echo "the gpu extra failed to install"; exit 1; }
"$VENV/bin/pip" list 2>/dev/null | grep -iE '^(tensorflow|onnxruntime|keras|ray|nvidia-cudnn)' || true

step "what TensorFlow and ONNX Runtime see"
"$VENV/bin/python" - "$WORK/probe.json" <<'EOF'
import json, sys
import onnxruntime as ort
import tensorflow as tf
probe = {"tensorflow": tf.__version__, "tensorflow_gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
         "tensorflow_built_with_cuda": tf.test.is_built_with_cuda(), "onnxruntime": ort.__version__,
         "onnxruntime_providers": ort.get_available_providers()}
print(json.dumps(probe, indent=1))
json.dump(probe, open(sys.argv[1], "w"))
EOF

step "3,000 built-in tweets"
DATA=$WORK/tweets.parquet
"$VENV/bin/python" -c "
from voxpop.data.builtin import load_tweets
tweets = load_tweets()
tweets.groupby('label').sample(frac=3000 / len(tweets), random_state=0)[['text', 'label']].to_parquet('$DATA')
" || exit 1

# The GPU's processes, every second, while the trials and predict run.
( while sleep 1; do
    nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader 2>/dev/null \
      | sed "s/^/$(date +%s), /"
  done ) > "$OUT/gpu_apps.csv" &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null' EXIT

step "tune: two trials, half a GPU each"
"$VENV/bin/voxpop" tune "$DATA" --space cnn --space bilstm --samples 1 --max-epochs 2 \
  --scheduler fifo --cpus-per-trial 2 --gpus-per-trial 0.5 --storage "$WORK/runs" --name gpu \
  2>&1 | tail -30
echo "tune exit status ${PIPESTATUS[0]}"

step "export"
"$VENV/bin/voxpop" export "$WORK/runs/gpu" --out "$WORK/bundle" --size 2 2>&1 | tail -5

step "predict --device cuda"
"$VENV/bin/voxpop" predict "$WORK/bundle" "$DATA" --device cuda --out "$WORK/predictions.csv" \
  2> "$WORK/predict.err"
echo "predict exit status $?"; cat "$WORK/predict.err"

kill $SAMPLER 2>/dev/null
step "summary -> $OUT/gpu_check.json"
"$VENV/bin/python" - "$WORK" "$OUT" "$(git rev-parse HEAD 2>/dev/null || echo unknown)" <<'EOF'
import json, sys
from pathlib import Path

work, out, commit = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
probe = json.loads((work / "probe.json").read_text()) if (work / "probe.json").is_file() else {}
epochs = [json.loads(p.read_text()) for p in sorted((work / "runs").glob("**/metrics.json"))]
trials = {}
for e in epochs:
    t = trials.setdefault(e["trial_id"], {"family": e["family"], "node_id": e["node_id"],
                                          "gpu_ids": e.get("gpu_ids"), "epochs": 0,
                                          "started": e["trial_started"], "ended": e["ended"]})
    t["epochs"] += 1
    t["ended"] = max(t["ended"], e["ended"])
    t["best_val_macro_f1"] = max(t.get("best_val_macro_f1", 0.0), e["val_macro_f1"])
    t["seconds"] = round(t["ended"] - t["started"], 1)
predict_err = (work / "predict.err").read_text() if (work / "predict.err").is_file() else ""
device_line = next((line for line in predict_err.splitlines() if "device" in line), "")
apps = [line.split(", ") for line in (out / "gpu_apps.csv").read_text().splitlines() if line.strip()]
ran = list(trials.values())
summary = {
    "commit": commit,
    "probe": probe,
    "trials": trials,
    "trials_overlapped": len(ran) == 2 and max(t["started"] for t in ran) < min(t["ended"] for t in ran),
    "predict_device_line": device_line,
    "gpu_processes_seen": sorted({(a[1], a[2]) for a in apps if len(a) >= 4}),
    "gpu_memory_peak": max((a[3] for a in apps if len(a) >= 4), default=None, key=lambda m: int(m.split()[0])),
}
ok = (bool(probe.get("tensorflow_gpus")) and len(ran) == 2 and all(t["gpu_ids"] for t in ran)
      and "device cuda" in device_line)
summary["all_on_gpu"] = ok
(out / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=list))
print(json.dumps(summary, indent=1, default=list))
sys.exit(0 if ok else 1)
EOF
