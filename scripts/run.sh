#!/usr/bin/env bash
# Runs Shelf locally (what `make run` does inside scripts/dev_services.py): creates the database if
# missing, migrates and seeds it, then serves the API with gunicorn (gunicorn.conf.py) next to an rq
# worker until Ctrl-C / SIGTERM, which stops both. Reads Shelf's settings as the app does (catalog.config:
# where gunicorn listens, the queue's Redis, the write token it prints) and SHELF_STOP_TIMEOUT, a
# setting of this script only; flask, gunicorn, rq and python come from PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

{ read -r host && read -r port && read -r queue_url && read -r token; } < <(
    python -c 'import sys; from catalog.config import print_settings; print_settings(sys.argv[1:])' \
        host port queue_url write_token
)
url_host="$host"
[[ "$url_host" == "0.0.0.0" ]] && url_host=127.0.0.1
# Seconds the processes get to stop after SIGTERM. gunicorn needs its graceful timeout (20 s); an rq
# worker finishes the job it runs first, which may take that job's whole timeout (30 min for a warm).
stop_timeout="${SHELF_STOP_TIMEOUT:-30}"
[[ "$stop_timeout" =~ ^[0-9]+$ ]] || { echo "run.sh: SHELF_STOP_TIMEOUT must be whole seconds" >&2; exit 2; }
pids=()  # rq worker, gunicorn, periodic jobs (jobs/cron.py)
names=() # the same, as the log names them
sleeper=""

any_alive() {
    local pid
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
    return 1
}

kill_tree() { # SIGKILL a process and its children (gunicorn's workers, rq's work horse and scheduler)
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do kill -KILL "$child" 2>/dev/null || true; done
    kill -KILL "$1" 2>/dev/null || true
}

stop() {
    trap '' INT TERM HUP
    if [[ -n "$sleeper" ]]; then kill "$sleeper" 2>/dev/null || true; fi
    ((${#pids[@]})) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local ticks i # of 0.2 s: at least stop_timeout seconds in all
    for ((ticks = 0; ticks < stop_timeout * 5; ticks++)); do
        any_alive "${pids[@]}" || break
        sleep 0.2
    done
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            echo "run.sh: ${names[$i]} (pid ${pids[$i]}) still running ${stop_timeout}s after SIGTERM; killing it" >&2
            kill_tree "${pids[$i]}"
        fi
    done
    wait "${pids[@]}" 2>/dev/null || true
}

banner() {
    cat <<EOF

  Shelf API     http://$url_host:$port
  API docs      http://$url_host:$port/docs
  Write token   $token   (header: Authorization: Bearer $token)
  Queue worker  rq, queues high, default, low
  Ctrl-C stops the API, the worker and any embedded database/Redis.

EOF
}

# Every way out stops what was started, an unexpected error (set -e) too; nothing is left running.
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP # terminal closed: stop, rather than let gunicorn take it as "reload"

if [[ -n "${DATABASE_URL:-}" ]]; then
    python scripts/dev_services.py ensure-db
fi
flask --app api db upgrade
flask --app api seed --if-empty

# Job data is JSON, never pickled: the worker must say so too. jobs.worker.Worker loads the job
# modules once, before rq forks a process per job.
rq worker --worker-class jobs.worker.Worker --with-scheduler --serializer json --path . \
    --url "$queue_url" high default low &
pids+=($!) names+=("rq worker")
gunicorn -c gunicorn.conf.py 'api:create_app()' &
pids+=($!) names+=(gunicorn)
python -m jobs.cron &
pids+=($!) names+=("periodic jobs")

# Wait until gunicorn accepts connections (bash's /dev/tcp: no curl needed), then say where it is.
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/$url_host/$port") 2>/dev/null && break
    kill -0 "${pids[1]}" 2>/dev/null || break
    sleep 0.2
done
if kill -0 "${pids[1]}" 2>/dev/null; then
    banner
else
    echo "run.sh: gunicorn did not start (is port $port taken? set SHELF_PORT)" >&2
fi

# Run until either process exits (or a signal arrives), then stop the other.
status=0
while kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null && kill -0 "${pids[2]}" 2>/dev/null; do
    sleep 1 &
    sleeper=$!
    wait "$sleeper" || true
done
for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
        wait "${pids[$i]}" || status=$?
        echo "run.sh: ${names[$i]} (pid ${pids[$i]}) exited with status $status; stopping the rest" >&2
        break
    fi
done
exit "$status"
