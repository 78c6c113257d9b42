#!/usr/bin/env bash
# Runs `demo --once --json` N times (default 20) and prints one line per run plus a summary:
# images.missing_on_standby and images.quarantined_on_a must be 0 in every run.
# Usage: bash bench/repo/demo-loop.sh [N] [outdir]   (after npm run build)
set -u
n=${1:-20}
out=${2:-$(mktemp -d)}
mkdir -p "$out"
fail=0
for i in $(seq 1 "$n"); do
  node dist/src/cli/main.js demo --once --json >"$out/run-$i.json" 2>"$out/run-$i.err"
  rc=$?
  line=$(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop());
    const i = r.images, f = r.failback;
    console.log(`mode=${i.mode} uploaded=${i.uploaded} missing_on_standby=${i.missing_on_standby} mismatched=${i.mismatched} quarantined_on_a=${i.quarantined_on_a} lost_images=${f.lost_images} lost_rows=${f.lost_rows} split_brain=${r.split_brain_observed}`);
    process.exit(i.missing_on_standby || i.quarantined_on_a || i.mismatched || f.lost_images ? 1 : 0);
  ' "$out/run-$i.json" 2>/dev/null) || { fail=$((fail + 1)); line="FAIL rc=$rc ${line:-no report}"; }
  echo "run $i: $line"
done
echo "runs=$n failed=$fail (reports in $out)"
[ "$fail" -eq 0 ]
