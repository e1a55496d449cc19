#!/usr/bin/env bash
# The main job on an embedded default, no cluster and no external service: generate a seeded
# two-day trace of two models (daily cycle, weekday peak, bursts), replay it through the modelled
# KEDA + HPA + GPU nodes + vLLM replicas under every policy of the default scenario, and write the
# cost report. Arguments go to `depthscale simulate` (e.g. --scenario examples/models.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
. .venv/bin/activate
out=quickstart
trace="$out/trace.parquet"
mkdir -p "$out"
if [ ! -f "$trace" ]; then
  depthscale trace synth "$trace" --days 2 --model llama-3-8b=40 --model mistral-7b=12 --seed 7
fi
depthscale simulate "$trace" --out "$out/report" "$@"
echo
# The headline for depthscale itself, from the report: did it meet the SLO?
python - "$out/report/report.json" <<'EOF'
import json, sys

doc = json.load(open(sys.argv[1]))
slo, target = doc["slo_wait_s"], 100 * doc["slo_attainment"]
p = doc["policies"].get("depthscale")
if p is not None:
    within, p95 = 100 * p["slo_attainment"], p["wait_s"]["p95"]
    verdict = "met" if p["meets_slo"] else "did NOT meet"
    print(
        f"depthscale {verdict} the SLO on this trace: {within:.1f}% of requests waited"
        f" <= {slo:g} s (target {target:g}%), p95 wait {p95:,.1f} s."
    )
print(doc["verdict"]["lines"][0])
EOF
echo
echo "Open $out/report/report.html in a browser (it works offline); $out/report/report.md is the"
echo "same in text. The live scaler on this machine: .venv/bin/depthscale demo"
