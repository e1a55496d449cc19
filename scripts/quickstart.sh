#!/usr/bin/env bash
# The main job on an embedded default, no cluster and no external service: generate a seeded
# two-day trace of two models (daily cycle, weekday peak, bursts), replay it through the modelled
# KEDA + HPA + GPU nodes + vLLM replicas under every policy of the default scenario, and write the
# cost report. Arguments go to `depthscale simulate`. With --scenario FILE (e.g.
# examples/models.yaml) the trace is generated for that file's models instead, each at a tenth
# of its capacity (`depthscale trace synth --help`), in its own file next to the default one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
. .venv/bin/activate
out=quickstart
scenario=""
previous=""
for arg in "$@"; do
  case "$arg" in
    --scenario=*) scenario="${arg#--scenario=}" ;;
    *) if [ "$previous" = "--scenario" ]; then scenario="$arg"; fi ;;
  esac
  previous="$arg"
done
mkdir -p "$out"
if [ -z "$scenario" ]; then
  trace="$out/trace.parquet"
  if [ ! -f "$trace" ]; then
    depthscale trace synth "$trace" --days 2 --model llama-3-8b=40 --model mistral-7b=12 --seed 7
  fi
else
  # A trace per models file, made again each run: the file may have changed since.
  name="$(basename "$scenario")"
  trace="$out/trace-${name%.*}.parquet"
  depthscale trace synth "$trace" --days 2 --scenario "$scenario" --seed 7
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
