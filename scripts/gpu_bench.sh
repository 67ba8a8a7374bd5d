#!/usr/bin/env bash
# The full-size figures on a CUDA machine, in one run (BENCHMARKS.md records its output):
#
#   bash scripts/gpu_bench.sh LOG_FOLDER
#
# writes the official FFHQ-1024 files with random weights (scripts/official_random_files.py),
# makes a pack of them (framed as "pad": dlib's landmark file is not on a GPU box, and face
# alignment is CPU work that `wordbrush bench faces` times), then times CLIPInverter and
# paint-by-word at 1024 px through a warm engine, the models (fp32, fp16, bf16: speed and
# the largest difference from fp32), the demo pack's edits, and the precomputes' estimates
# on the GPU (LOG_FOLDER/gpu_bench.log). Each step has its own
# time limit, so that one slow step leaves the others' figures. Needs torch with CUDA,
# open_clip_torch, pyzmq, msgpack, numpy, pillow, scikit-learn and tqdm.
set -uo pipefail
log_dir=${1:-/tmp/gpu_bench}
mkdir -p "$log_dir"
export PYTHONUNBUFFERED=1
size=${SIZE:-1024}      # SIZE=256 DEVICE=cpu tries the script itself on a CPU
device=${DEVICE:-cuda}
files=/tmp/ffhq$size
wb=(python3 -m engine)
log="$log_dir/gpu_bench.log"
step() {  # step SECONDS NAME COMMAND...: run it, its output (less progress bars) to the log
    local limit=$1 name=$2
    shift 2
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit} s): $*" | tee -a "$log"
    timeout "$limit" "$@" 2>&1 | tr '\r' '\n' | grep --line-buffered -v -E \
        '^\s*$|it/s\]$|s/it\]$|run/s\]$|s/run\]$|image/s\]$|s/image\]$' | tee -a "$log"
    echo "=== $name: exit ${PIPESTATUS[0]}" | tee -a "$log"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
step 150 files python3 scripts/official_random_files.py "$files" --size "$size"
step 90 pack "${wb[@]}" pack create ffhq --link --resolution "$size" \
    --generator "$files/stylegan2-$size.pt" --encoder "$files/e4e_${size}_encode.pt" \
    --clip-weights "$files/open_clip_ViT-B-32.bin" --clipinverter "$files/clipinverter_$size.pt" \
    --neutral-prompt 'a face' --framing pad
step 120 clipinverter "${wb[@]}" bench edit --pack ffhq --method clipinverter --repeats 5 \
    --device "$device"
step 120 paint-by-word "${wb[@]}" bench edit --pack ffhq --method paint-by-word --param steps=10 \
    --repeats 2 --device "$device"
step 100 models "${wb[@]}" bench models --device "$device" --repeats 10
step 60 demo "${wb[@]}" bench edit --pack demo --method paint-by-word --repeats 3 --device "$device"
step 90 feu-precompute "${wb[@]}" precompute feu --pack ffhq --device "$device"
step 40 gd-estimate "${wb[@]}" precompute global-directions --pack ffhq --device "$device"
echo "=== done $(date -u +%H:%M:%S)" | tee -a "$log"
