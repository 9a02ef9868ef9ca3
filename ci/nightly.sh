#!/usr/bin/env bash
# The nightly disaster-recovery exercise: what .github/workflows/nightly-dr.yml runs, and
# what `make test` runs in a bounded form (tests/nightly.rs), so the nightly path is
# exercised on every change.
#
#   ci/nightly.sh [--backend kind|local | --on RUN_DIR] [--suite SUITE] [--repeat N] [--report DIR] [--bounded] [FILTER...]
#
# Sets everything up through the project's own setup (`make build`: Debian packages, the
# pinned builds, the Docker engine, the kind node image), then runs every suite whose
# `suite::scenario` matches a FILTER (all by default) on BACKEND (default kind), N rounds
# (default 1), writing the report directory (default reports/nightly); --suite runs that
# suite alone (suites/SUITE.yaml), one job of the nightly workflow's matrix. With
# GITHUB_STEP_SUMMARY set, firedrill appends the tables, the mismatches and the stability
# figures to that file. --bounded runs identity::single-instance-fails once, whatever the
# filters and --repeat say. --on runs on a run already up (`firedrill up`) instead of a
# new environment, and leaves it up (make test's kind tests share one). A relative
# --report or --on is taken from the caller's directory.
#
# Exit status, kept distinct for the workflow: 0 every table matches, 1 a table differs
# from its document, 2 the harness failed (set-up included), 3 bad arguments.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
backend=kind repeat=1 report=$root/reports/nightly bounded=0 filters=() on='' suite=''
while (($#)); do
  case $1 in
    --backend|--repeat|--report|--on|--suite)
      (($# >= 2)) || { echo "nightly: $1 needs a value (see --help)" >&2; exit 3; }
      case $1 in
        --backend) backend=$2 ;;
        --repeat) repeat=$2 ;;
        --report) report=$(realpath -m -- "$2") ;;
        --on) on=$(realpath -m -- "$2") ;;
        --suite) suite=$2 ;;
      esac
      shift 2 ;;
    --bounded) bounded=1; shift ;;
    --help|-h) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "nightly: unknown option $1 (see --help)" >&2; exit 3 ;;
    *) filters+=("$1"); shift ;;
  esac
done
case $backend in kind|local) ;; *) echo "nightly: --backend must be kind or local, not '$backend'" >&2; exit 3 ;; esac
[[ $repeat =~ ^[1-9][0-9]*$ ]] || { echo "nightly: --repeat must be a positive number, not '$repeat'" >&2; exit 3; }
((bounded)) && filters=(identity::single-instance-fails) repeat=1
if [[ -n $suite && ! -f $root/suites/$suite.yaml ]]; then
  echo "nightly: --suite $suite: no suites/$suite.yaml" >&2
  exit 3
fi

cd "$root" || exit 2
echo "nightly: set-up (make build)" >&2
if ! make -s build >&2; then
  echo "nightly: set-up failed" >&2
  [[ -n ${GITHUB_STEP_SUMMARY:-} ]] && printf '## firedrill nightly: set-up failed\n\nSee the job log.\n' >>"$GITHUB_STEP_SUMMARY"
  exit 2
fi
where=(--backend "$backend")
[[ -n $on ]] && where=(--on "$on")
if [[ -n $suite ]]; then
  only=$(mktemp -d)
  trap 'rm -rf "$only"' EXIT
  ln -s "$root/suites/$suite.yaml" "$only/"
  where+=(--suites "$only")
fi
echo "nightly: firedrill run ${where[*]} --repeat $repeat --report $report ${filters[*]}" >&2
target/debug/firedrill run "${where[@]}" --repeat "$repeat" --report "$report" "${filters[@]}"
status=$?
case $status in
  0) echo "nightly: every table matches its document" >&2 ;;
  1) echo "nightly: a table differs from its document (exit 1)" >&2 ;;
  *) echo "nightly: the harness failed (exit $status)" >&2; status=2 ;;
esac
exit $status
