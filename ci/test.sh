#!/usr/bin/env bash
# usage: ci/test.sh   (what `make test` runs after `make setup-local`; CARGO=… for another cargo)
#
# Every test binary, layer by layer (docs/testing.md says which layer checks what), the
# local layer in three lanes side by side, with the kind backend's set-up built in the
# background at idle CPU and I/O priority meanwhile and its tests last, on one kind run
# they share. Every binary runs even after
# one fails; the leftover check runs whatever they returned. The exit status is the
# tests', or the leftover check's when they passed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
firedrill=target/debug/firedrill
# shellcheck source=lib.sh
. ci/lib.sh
# The engine ci/docker.sh provided, for the tests that call docker and kind themselves.
use_engine

# One live scenario per suite, and resilience's second so that sampling carried from one
# scenario to the next runs live too. Every scenario's verdict is judged from its
# recording (tests/recordings.rs); `make drill` and the nightly run them all live.
live_drills=(
  identity::instances-down
  management::management-plane-fails
  dr-restore::restore-from-snapshot
  resilience::etcd-member-killed
  resilience::apiserver-killed
  separation::drain-worker
)
kind_tests=(kind nightly upstream)
# Kind tests with runs of their own too large to sit beside the shared run: before it
# comes up (a multi run's six nodes and the shared run's three exceed the inotify
# instances the machine allows; tests/netpol.rs says more).
kind_before=(netpol)
# The local layer in three lanes side by side, each test binary bringing up environments
# of its own (run numbers are claimed machine-wide, `down --all` of a test's state
# directory takes down only its runs): safety's fault kinds (about 4 minutes alone), the
# existing backend and the CLI, and the rest. Their timings go to target/lanes.log.
# coexistence and host run alone after them: the first sets the machine's FORWARD policy
# to drop, which a run brought up before would not pass; the second watches the blackhole
# route go with the machine's last local run.
lanes=("safety" "existing cli cold_start progress")
alone=(coexistence host)
local_tests=()
for f in harness/tests/*.rs; do
  t=$(basename "$f" .rs)
  [[ " ${kind_tests[*]} ${kind_before[*]} ${lanes[*]} ${alone[*]} drills " == *" $t "* ]] || local_tests+=("$t")
done

mkdir -p target
ci/leftovers.sh --record target/leftovers.before
rm -f target/lanes.log
echo "make test: the kind backend's set-up, in the background (target/setup-kind.log)"
# shellcheck disable=SC2016 # expanded by the inner shell
setsid chrt --idle 0 ionice -c 3 bash -c 's=$SECONDS; ci/setup.sh kind && ci/kind-image.sh; r=$?; echo "took $((SECONDS - s)) s, status $r"; exit $r' \
  </dev/null >target/setup-kind.log 2>&1 &
kind=$!
lane_pids=()
# The kind tests' shared run is recorded in a state directory of its own, so that
# whatever `up` made of it, even interrupted, `down` of each run there removes that.
kind_state=$(mktemp -d)
# shellcheck disable=SC2317 # run by the trap
cleanup() {
  if [[ -n $kind ]]; then kill -- -"$kind" 2>/dev/null || true; fi
  local l
  for l in "${lane_pids[@]}"; do kill -INT -- -"$l" 2>/dev/null || true; done
  local left=0 run
  for run in "$kind_state"/kind-runs/*; do
    [[ -e $run ]] || continue
    FIREDRILL_STATE=$kind_state "$firedrill" down "$run" >&2 || left=1
  done
  if ((left)); then echo "make test: a kind run of the kind tests is left in $kind_state" >&2; else rm -rf "$kind_state"; fi
}
trap cleanup EXIT

status=0
# Pure logic, every scenario's verdict from its recording, the CLI, each fault kind live:
# the other lanes' output is shown when all are done.
for i in "${!lanes[@]}"; do
  read -ra tests <<<"${lanes[$i]}"
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid bash -c 's=$SECONDS; "$0" test -p firedrill --no-fail-fast "${@/#/--test=}"; r=$?; echo "lane ${*}: took $((SECONDS - s)) s, status $r" >>target/lanes.log; exit $r' \
    "$cargo" "${tests[@]}" </dev/null >"target/test-lane-$i.log" 2>&1 &
  lane_pids+=($!)
done
s=$SECONDS
"$cargo" test --workspace --no-fail-fast --lib --bins "${local_tests[@]/#/--test=}" || status=$?
echo "lane ${local_tests[*]}: took $((SECONDS - s)) s" >>target/lanes.log
for i in "${!lane_pids[@]}"; do
  wait "${lane_pids[$i]}" || status=$?
  cat "target/test-lane-$i.log"
done
lane_pids=()
"$cargo" test -p firedrill --no-fail-fast "${alone[@]/#/--test=}" || status=$?
# One live scenario per suite: every other trial of tests/drills.rs skipped by name.
mapfile -t trials < <("$cargo" test -q -p firedrill --test drills -- --list | sed -n 's/: test$//p')
skips=()
for t in "${trials[@]}"; do
  [[ " ${live_drills[*]} " == *" $t "* ]] || skips+=(--skip "$t")
done
missing=()
for t in "${live_drills[@]}"; do
  [[ " ${trials[*]} " == *" $t "* ]] || missing+=("$t")
done
if ((${#trials[@]} == 0 || ${#missing[@]})); then
  echo "make test: tests/drills.rs lists no drill ${missing[*]:-at all} (ci/test.sh names one per suite); no drill runs" >&2
  status=1
else
  "$cargo" test -p firedrill --no-fail-fast --test drills -- --exact "${skips[@]}" || status=$?
fi

kind_setup=0
wait "$kind" || kind_setup=$?
kind=
if ((kind_setup)); then
  echo "make test: the kind backend's set-up failed, so its tests (${kind_before[*]} ${kind_tests[*]}) did not run:" >&2
  tail -n 30 target/setup-kind.log >&2
  status=1
else
  echo "make test: the kind backend's set-up $(tail -n 1 target/setup-kind.log)"
  "$cargo" test -p firedrill --no-fail-fast "${kind_before[@]/#/--test=}" || status=$?
  # The kind tests share one run (topology single; hosts ldap and lb for the identity
  # component the nightly drill deploys, spare for tests/kind.rs's own), taken down here.
  if up=$(FIREDRILL_STATE=$kind_state "$firedrill" up --backend kind --topology single --hosts ldap,lb,spare 2>&1); then
    kind_run=$(sed -n 's/^tear down with: firedrill down //p' <<<"$up")
    FIREDRILL_KIND_RUN=$kind_run FIREDRILL_KIND_STATE=$kind_state \
      "$cargo" test -p firedrill --no-fail-fast "${kind_tests[@]/#/--test=}" || status=$?
    FIREDRILL_STATE=$kind_state "$firedrill" down "$kind_run" || status=1
  else
    echo "make test: the kind tests' shared run did not come up, so they did not run:" >&2
    echo "$up" >&2
    status=1
  fi
fi
ci/leftovers.sh --since target/leftovers.before || { [[ $status != 0 ]] || status=1; }
exit "$status"
