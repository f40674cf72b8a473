#!/usr/bin/env bash
# How long `make demo` takes from a fresh clone to an answering login page.
#
#   [DEMO_REV=<commit>] devtools/time_demo.sh [REPO] [RUNS]
#
# Clones REPO (default: this repository; its committed HEAD, not the work tree, or DEMO_REV) into a new
# temporary folder, runs `make demo` there in a process group of its own on a free port, polls
# GET /login until it answers 200, prints the seconds that took, then stops the whole group and
# removes the clone. RUNS (default 1) repeats it, each time in a new clone. The package caches
# (uv's, pip's) are whatever the machine has: run it twice to see the warm-cache time.
# The output of `make demo` goes to the clone's demo.log; the last lines are shown on failure.
set -uo pipefail

repo=${1:-$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)}
runs=${2:-1}
limit_seconds=${DEMO_TIME_LIMIT:-300}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

one_run() {
  local clone port started pid status=1 elapsed
  clone=$(mktemp -d /tmp/countersign-demo-XXXXXX)
  git clone --quiet "$repo" "$clone/repo" || { rm -rf "$clone"; return 1; }
  if [ -n "${DEMO_REV:-}" ]; then git -C "$clone/repo" checkout --quiet "$DEMO_REV" || { rm -rf "$clone"; return 1; }; fi
  port=$(free_port)
  started=$(date +%s.%N)
  # setsid: make and every process it starts share one new process group, stopped together below.
  (cd "$clone/repo" && PORT=$port NO_COLOR=1 exec setsid make demo >"$clone/demo.log" 2>&1) &
  pid=$!
  while true; do
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/login" 2>/dev/null; then
      elapsed=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
      echo "login page after ${elapsed} s"
      status=0
      break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "make demo exited before the login page answered:" >&2
      tail -n 30 "$clone/demo.log" >&2
      break
    fi
    if python3 -c "import sys, time; sys.exit(time.time() - $started < $limit_seconds)"; then
      echo "no login page within $limit_seconds s:" >&2
      tail -n 30 "$clone/demo.log" >&2
      break
    fi
    sleep 0.2
  done
  # The group's id is the pid of setsid's process (it execs make): SIGTERM lets the launcher stop
  # its children in order, SIGKILL ends whatever is left.
  kill -TERM -- "-$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -rf "$clone"
  return "$status"
}

failed=0
for _ in $(seq 1 "$runs"); do
  one_run || failed=1
done
exit "$failed"
