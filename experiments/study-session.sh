#!/usr/bin/env bash
# One working session of the issue-12 studies on a fresh machine, where only the repository survives between sessions:
#
#   experiments/study-session.sh start UNTIL [fill]   # seed the study folders from the committed results, start two workers
#   experiments/study-session.sh start UNTIL solo     # the same, but one worker with both threads (see below)
#   experiments/study-session.sh status          # both plans' --status
#   experiments/study-session.sh sync            # copy new results into docs/results/study-*/, regenerate the reports
#
# UNTIL is a UTC clock time (HH:MM) or date-time by which the workers must be done: each worker claims only jobs whose
# estimated time left ends before it (diffusion study --until), so end the session's work ≈ 10 minutes after it.
# The workers run the ./diffusion of the checkout this script is in — build it first, and do not rebuild it while they
# run (work on another clone). Worker 1 takes the Fashion-MNIST plan's jobs, then the grid plan's; worker 2 the other
# way round; one libtorch thread each, OMP_WAIT_POLICY=PASSIVE. Study folders and logs go to STUDY_ROOT (default
# runs/ of this checkout): STUDY_ROOT/study-fashion, STUDY_ROOT/study-grid, STUDY_ROOT/w1.log, STUDY_ROOT/w2.log.
# A job still running at UNTIL stops there (diffusion study --until: its training writes a checkpoint at the step
# reached). With "fill", a worker with nothing left that fits before UNTIL then takes the other jobs too (--fill), to be
# stopped at UNTIL: such a job resumes in the next session if this machine's disk survives, and starts from zero if
# not — the core would otherwise stand idle.
# With "solo", one worker runs with two threads and takes jobs as "fill" does: for a job that needs more than a
# session of one thread (the Fashion-MNIST plan's SMD and all-five jobs on seed 1 need ≈ 3.5 h of one thread), when
# nothing else is left to run beside it. --until's estimates assume one thread, so solo always fills.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${STUDY_ROOT:-$root/runs}"
plans=(fashion grid)
cmd="${1:-}"

case "$cmd" in
  start)
    [ $# -eq 2 ] || { [ $# -eq 3 ] && { [ "$3" = fill ] || [ "$3" = solo ]; }; } \
      || { echo "usage: $0 start UNTIL [fill|solo] (UNTIL: a UTC time HH:MM or an ISO date-time)" >&2; exit 2; }
    until_time="$2"
    mode="${3:-}"
    threads=1 fill=""
    [ "$mode" = fill ] && fill=fill
    [ "$mode" = solo ] && threads=2 fill=fill
    [ -x "$root/diffusion" ] || { echo "error: $root/diffusion not found: build the project first" >&2; exit 2; }
    deadline="$(date -u -d "$until_time" +%s 2>/dev/null)" \
      || { echo "error: UNTIL '$until_time' is not a time: expected HH:MM (UTC, today) or an ISO date-time" >&2; exit 2; }
    [ "$(date -u +%s)" -lt "$deadline" ] || { echo "error: UNTIL $until_time is already past" >&2; exit 2; }
    for p in "${plans[@]}"; do
      dir="$runs/study-$p"
      mkdir -p "$dir/results"
      # Finished jobs are never redone: the committed result files (and the features they were scored in) come first.
      if compgen -G "$root/docs/results/study-$p/results/*.json" > /dev/null; then
        cp -n "$root/docs/results/study-$p/results/"*.json "$dir/results/"
      fi
      [ -f "$root/docs/results/study-$p/features.json" ] && cp -n "$root/docs/results/study-$p/features.json" "$dir/"
    done
    worker() {
      local first="$1" second="$2" log="$3"
      # A pass is started only before the deadline: once a pass has stopped at UNTIL, the passes after it have nothing
      # left to do (diffusion study would refuse the past --until with an error line in the log).
      before_deadline() { [ "$(date -u +%s)" -lt "$deadline" ]; }
      ( cd "$root"
        for p in "$first" "$second"; do
          before_deadline || break
          OMP_WAIT_POLICY=PASSIVE ./diffusion study "experiments/study-$p.toml" --out "$runs/study-$p" --threads "$threads" --until "$until_time" || true
        done
        if [ "$fill" = fill ]; then
          for p in "$first" "$second"; do
            before_deadline || break
            OMP_WAIT_POLICY=PASSIVE ./diffusion study "experiments/study-$p.toml" --out "$runs/study-$p" --threads "$threads" --until "$until_time" --fill || true
          done
        fi ) >> "$log" 2>&1 &
      echo "worker: $first then $second → $log (pid $!)"
    }
    worker fashion grid "$runs/w1.log"
    if [ "$mode" != solo ]; then
      sleep 20   # the first claims its job before the second looks
      worker grid fashion "$runs/w2.log"
    fi
    ;;
  status)
    for p in "${plans[@]}"; do
      echo "== study-$p"
      "$root/diffusion" study "$root/experiments/study-$p.toml" --out "$runs/study-$p" --status | tail -n 3
    done
    ;;
  sync)
    for p in "${plans[@]}"; do
      dir="$runs/study-$p" docs="$root/docs/results/study-$p"
      [ -d "$dir/results" ] || continue
      mkdir -p "$docs/results"
      cp -u "$dir/results/"*.json "$docs/results/" 2>/dev/null || true
      [ -f "$dir/features.json" ] && cp -u "$dir/features.json" "$docs/"
      # From the repository root with relative paths: the report prints the command that regenerates it, and it is
      # committed — it must be the command a user types in a clone, not this machine's absolute paths.
      ( cd "$root" && ./diffusion study "experiments/study-$p.toml" --out "docs/results/study-$p" --report )
    done
    # 10-step samples of the variants whose seed-0 final checkpoint is on this machine: image grids for Fashion-MNIST,
    # scatters over the training data for the 2-D grid.
    for p in "${plans[@]}"; do
      [ -d "$runs/study-$p/work" ] || continue
      "$root/experiments/study-grids.sh" "$runs/study-$p" "$root/docs/results/study-$p/grids" "$root/experiments/study-$p.toml"
    done
    echo "synced: git status docs/results shows what is new"
    ;;
  *)
    echo "usage: $0 start UNTIL [fill|solo] | status | sync" >&2
    exit 2
    ;;
esac
