#!/usr/bin/env bash
# Issue 18 item 5: the figures of a real GPU, in one run. On a machine with a Vulkan GPU, Dawn for
# Node (the `webgpu` package) picks it up; this runs
#   - `webgguf bench-gemv` for every weight kind, with the output head and the sampler at 152k and
#     262k vocabularies (--vocab),
#   - `webgguf bench` on random-weight models at three real shapes (made by make-model under
#     $OUT_DIR): tinyllama-1.1b Q4_0, smollm2-135m Q4_0 and a Llama-3.2-1B-shape Q4_K_M, with a
#     prefill of 512 tokens,
# and prints one summary line per model with decode and prefill tok/s and roofline_fraction. The
# JSON lines land in $OUT_DIR/*.json for docs/PERFORMANCE.md.
#
# usage: bench/real-gpu.sh [--dry-run] [--tiny] [--allow-cpu]
#   --dry-run    print the commands, run nothing
#   --tiny       small settings (tiny-256 shapes, 16 prompt tokens, Q4_0 only, no --vocab) to check
#                the script itself on SwiftShader (test/real-gpu-script.test.ts); implies --allow-cpu
#   --allow-cpu  run even where the adapter is a CPU implementation (SwiftShader)
# Environment: OUT_DIR (default /tmp/webgguf-real-gpu), RUNS (3), GEN_TOKENS (128),
# PROMPT_TOKENS (512), WEBGGUF (the CLI; default: node bin/webgguf.js from this checkout).
set -euo pipefail

cd "$(dirname "$0")/.."
DRY=0
TINY=0
ALLOW_CPU=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    --tiny) TINY=1; ALLOW_CPU=1 ;;
    --allow-cpu) ALLOW_CPU=1 ;;
    *) echo "real-gpu.sh: unknown option $arg (known: --dry-run, --tiny, --allow-cpu)" >&2; exit 2 ;;
  esac
done

OUT_DIR="${OUT_DIR:-/tmp/webgguf-real-gpu}"
WEBGGUF="${WEBGGUF:-node bin/webgguf.js}"
# Every GPU weight kind (src/quant/formats.ts GPU_WEIGHT_KINDS; the test checks the two agree).
ALL_KINDS="f32,f16,bf16,q8_0,q4_0,q4_1,q5_0,q5_1,q4_k,q5_k,q6_k"
if [ "$TINY" = 1 ]; then
  KINDS=q4_0
  VOCAB=()
  RUNS="${RUNS:-1}"; GEN_TOKENS="${GEN_TOKENS:-4}"; PROMPT_TOKENS="${PROMPT_TOKENS:-16}"
  # name shape quant: the same three runs, at a shape SwiftShader runs in seconds.
  MODELS=("tinyllama-1.1b tiny-256 q4_0" "smollm2-135m tiny-256 q4_0" "llama-3.2-1b tiny-256 q4_k_m")
else
  KINDS="$ALL_KINDS"
  VOCAB=(--vocab 152064,262144)
  RUNS="${RUNS:-3}"; GEN_TOKENS="${GEN_TOKENS:-128}"; PROMPT_TOKENS="${PROMPT_TOKENS:-512}"
  MODELS=("tinyllama-1.1b tinyllama-1.1b q4_0" "smollm2-135m smollm2-135m q4_0" "llama-3.2-1b llama-3.2-1b q4_k_m")
fi

run() {
  echo "+ $*" >&2
  if [ "$DRY" = 0 ]; then "$@"; fi
}

# One field of a one-line JSON file.
field() {
  node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const v = r[process.argv[2]]; process.stdout.write(typeof v === "number" ? String(+v.toPrecision(4)) : String(v));' "$1" "$2"
}

[ "$DRY" = 1 ] || mkdir -p "$OUT_DIR"

# The GEMVs first: their adapter line says which GPU Dawn chose.
run $WEBGGUF bench-gemv --kinds "$KINDS" "${VOCAB[@]}" --json > "$([ "$DRY" = 1 ] && echo /dev/null || echo "$OUT_DIR/bench-gemv.json")"
if [ "$DRY" = 0 ]; then
  adapter="$(field "$OUT_DIR/bench-gemv.json" adapter)"
  echo "adapter: $adapter"
  if [ "$ALLOW_CPU" = 0 ] && echo "$adapter" | grep -qi -e swiftshader -e llvmpipe -e lavapipe; then
    echo "real-gpu.sh: Dawn chose a CPU implementation ($adapter), not a GPU; check the Vulkan driver (vulkaninfo --summary) or pass --allow-cpu" >&2
    exit 1
  fi
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const k of r.results) console.log(`gemv ${k.kind.padEnd(5)} ${k.gb_s.toFixed(2)} GB/s, ${(100 * k.fraction_of_probe).toFixed(1)}% of the probe (${r.probe_read_gb_s.toFixed(1)} GB/s)`);
    for (const h of r.head ?? []) console.log(`head vocab ${h.vocab}: head ${h.head_ms.toFixed(3)} ms, sampler greedy ${h.sample_greedy_ms.toFixed(3)} ms, top-p ${h.sample_top_p_ms.toFixed(3)} ms`);
  ' "$OUT_DIR/bench-gemv.json"
fi

for entry in "${MODELS[@]}"; do
  read -r name shape quant <<< "$entry"
  model="$OUT_DIR/$shape-$quant.gguf"
  if [ "$DRY" = 1 ] || [ ! -f "$model" ]; then
    run npx tsx scripts/make-model.ts --arch llama --shape "$shape" --quant "$quant" --out "$model" > /dev/null
  fi
  json="$OUT_DIR/bench-$name.json"
  run $WEBGGUF bench -m "$model" --prompt-tokens "$PROMPT_TOKENS" --gen-tokens "$GEN_TOKENS" --runs "$RUNS" --json > "$([ "$DRY" = 1 ] && echo /dev/null || echo "$json")"
  if [ "$DRY" = 0 ]; then
    echo "bench $name ($shape $quant): decode $(field "$json" decode_tok_s) tok/s, prefill $(field "$json" prefill_tok_s) tok/s at $(field "$json" prompt_tokens) tokens, roofline_fraction $(field "$json" roofline_fraction), kv $(field "$json" kv_cache)"
  fi
done
