#!/usr/bin/env bash
# Side by side with Chaos Toolkit, on the same cluster: scale the identity Deployment to 0,
# probe the issuer, scale it back, verify the steady state — once as a firedrill scenario
# (harness/benches/data/bench-identity.yaml), once as a Chaos Toolkit experiment. Reports
# the wall time of each, and what each says about timing and recovery.
#
# Chaos Toolkit (pinned, from PyPI) is installed into a venv under the firedrill cache.
# Writes target/bench/ctk.json (rows for `make bench`'s table) and keeps both journals in
# target/bench/ctk/. Needs root, `make build`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fd=$root/target/debug/firedrill
cache=${FIREDRILL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/firedrill}
ctk_version=1.19.0
ctk_k8s_version=0.39.0
venv=$cache/venv/chaostoolkit-$ctk_version-k8s-$ctk_k8s_version
out=$root/target/bench/ctk
mkdir -p "$out"

# Built where it stays (a venv's entry points name its path), marked complete last.
if [[ ! -f $venv/.complete ]]; then
  echo "bench-ctk: installing chaostoolkit $ctk_version and chaostoolkit-kubernetes $ctk_k8s_version into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "chaostoolkit==$ctk_version" "chaostoolkit-kubernetes==$ctk_k8s_version"
  touch "$venv/.complete"
fi

up=$("$fd" up --topology single --hosts ldap,lb)
run_dir=$(sed -n 's/^run .* is up (\(.*\))$/\1/p' <<<"$up")
trap '"$fd" down "$run_dir" >/dev/null' EXIT
kubeconfig=$(sed -n 's/^  cluster main: .*kubeconfig \(.*\)$/\1/p' <<<"$up")
lb=$(sed -n 's/^  host lb \(.*\)$/\1/p' <<<"$up")
issuer="https://$lb:5556/dex/.well-known/openid-configuration"

suite=(--on "$run_dir" --suites "$root/harness/benches/data" --snapshots "$root/harness/benches/data/snapshots")
# The first run deploys the identity component; the second is the one measured (its
# deploy finds everything in place), so both tools start from a deployed system.
"$fd" run "${suite[@]}" bench-identity::instances-down >/dev/null 2>&1 || true
start=$(date +%s.%N)
"$fd" run "${suite[@]}" --report "$out/firedrill" bench-identity::instances-down >"$out/firedrill.out" 2>&1
end=$(date +%s.%N)
fd_wall=$(python3 -c "print($end - $start)")

cat >"$out/experiment.json" <<EOF
{
  "version": "1.0.0",
  "title": "All identity instances down",
  "description": "Scale dex to 0, probe the issuer, scale back, verify the steady state (the firedrill scenario bench-identity::instances-down).",
  "configuration": {},
  "steady-state-hypothesis": {
    "title": "The issuer answers through the load balancer",
    "probes": [
      {"type": "probe", "name": "issuer-discovery", "tolerance": 200,
       "provider": {"type": "http", "url": "$issuer", "verify_tls": false, "timeout": 3}}
    ]
  },
  "method": [
    {"type": "action", "name": "scale-dex-to-0",
     "provider": {"type": "python", "module": "chaosk8s.deployment.actions", "func": "scale_deployment",
                  "arguments": {"name": "dex", "replicas": 0, "ns": "identity"}},
     "pauses": {"after": 10}},
    {"type": "probe", "name": "issuer-during-the-fault",
     "provider": {"type": "http", "url": "$issuer", "verify_tls": false, "timeout": 3}},
    {"type": "action", "name": "scale-dex-back",
     "provider": {"type": "python", "module": "chaosk8s.deployment.actions", "func": "scale_deployment",
                  "arguments": {"name": "dex", "replicas": 2, "ns": "identity"}},
     "pauses": {"after": 10}},
    {"type": "probe", "name": "dex-available",
     "provider": {"type": "python", "module": "chaosk8s.deployment.probes", "func": "deployment_available_and_healthy",
                  "arguments": {"name": "dex", "ns": "identity"}}}
  ],
  "rollbacks": [
    {"type": "action", "name": "scale-dex-back-on-rollback",
     "provider": {"type": "python", "module": "chaosk8s.deployment.actions", "func": "scale_deployment",
                  "arguments": {"name": "dex", "replicas": 2, "ns": "identity"}}}
  ]
}
EOF

start=$(date +%s.%N)
KUBECONFIG=$kubeconfig "$venv/bin/chaos" --no-version-check --log-file "$out/chaostoolkit.log" run \
  --journal-path "$out/journal.json" "$out/experiment.json" >"$out/chaostoolkit.out" 2>&1 || true
end=$(date +%s.%N)
ctk_wall=$(python3 -c "print($end - $start)")

python3 - "$out" "$fd_wall" "$ctk_wall" <<'EOF'
import json, sys
out, fd_wall, ctk_wall = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
fd = json.load(open(f"{out}/firedrill/results.json"))[0]
j = json.load(open(f"{out}/journal.json"))
secs = lambda d: d["secs"] + d["nanos"] / 1e9
took = secs(fd["took"])
print("Chaos Toolkit journal, the fields about timing:")
print(f"  status {j.get('status')}, deviated {j.get('deviated')}, start {j.get('start')}, end {j.get('end')}, duration {j.get('duration'):.2f} s")
for r in j.get("run", []):
    a = r["activity"]
    print(f"  {a['type']:6} {a['name']:28} start {r['start']} end {r['end']} duration {r['duration']:.2f} s status {r['status']}")
for phase in ("before", "after"):
    h = (j.get("steady_states") or {}).get(phase) or {}
    print(f"  steady state {phase}: met {h.get('steady_state_met')}")
print("firedrill, the same experiment:")
print(f"  verdict {fd['verdict']['verdict']}; scenario {took:.2f} s; phases " + ", ".join(f"{p} {secs(d):.1f} s" for p, d in fd.get("phases", [])))
for o in fd["operations"]:
    c = o["classification"]
    rec = "never affected" if o["never_affected"] else f"{secs(o['recovery']):.2f} s ±{secs(o['resolution']):.2f} s"
    ff = f"{secs(o['first_failure']):.2f} s" if o.get("first_failure") else "—"
    print(f"  {o['name']}: {c['impact']} ({c['ok']}/{c['samples']} ok), first failure {ff}, recovery {rec}")
rows = [
    {"figure": "Chaos Toolkit experiment (scale dex to 0, probe, scale back, steady state), wall", "measured": ctk_wall, "unit": "s", "target": None,
     "note": f"journal duration {j.get('duration'):.1f} s; status {j.get('status')}; one probe in the fault, fixed 10 s pauses, no recovery time"},
    {"figure": "firedrill, the same experiment, wall", "measured": fd_wall, "unit": "s", "target": None,
     "note": f"scenario {took:.1f} s; {sum(o['classification']['samples'] for o in fd['operations'])} judged samples, fault proven in effect, recovery timed"},
    {"figure": "Chaos Toolkit wall / firedrill wall", "measured": ctk_wall / fd_wall, "unit": "×", "target": [">=", 2.0], "note": "firedrill faster when above 1"},
]
json.dump(rows, open(f"{out}/../ctk.json", "w"), indent=2)
EOF
