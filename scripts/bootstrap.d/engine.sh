# shellcheck shell=bash
# Piece 3 — a Docker engine for local-db, the e2e tests and the test images.
#
# Installs: Debian's docker.io when the docker CLI or dockerd is missing. Starts dockerd in the
# background (log and pid in <tools>/docker/) only when no engine answers, after removing the pid
# files a killed engine leaves behind (dockerd refuses to start over them). Why: local-db targets
# the local engine; CI machines start with none running.
# Sets: ENGINE_READY.

DOCKER_SOCKET=/var/run/docker.sock
ENGINE_WAIT_SECONDS=${NNDB_DOCKER_WAIT:-60}
DOCKER_DIR=$TOOLS_DIR/docker
ENGINE_READY=0

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

clear_stale_engine_files() {
	local pidfile pid
	for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
		[[ -f $pidfile ]] || continue
		pid=$(cat "$pidfile" 2>/dev/null || true)
		if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
			say "removing stale $pidfile (process ${pid:-?} is gone)"
			rm -f "$pidfile"
		fi
	done
}

ensure_engine() {
	command -v docker >/dev/null || apt_install docker.io
	if docker_answers; then
		say "Docker engine: answering ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
		ENGINE_READY=1
		return 0
	fi
	if [[ -n ${DOCKER_HOST:-} && ${DOCKER_HOST} != "unix://$DOCKER_SOCKET" ]]; then
		fail "Docker engine" "DOCKER_HOST=$DOCKER_HOST does not answer; unset it to use a local engine or start that engine"
	fi
	[[ $(id -u) == 0 ]] || fail "Docker engine" "no engine answers and starting dockerd needs root; start it (e.g. sudo dockerd) and run again"
	if ! command -v dockerd >/dev/null; then
		step_begin "installing Debian's docker.io (first run only, ~20 s)"
		apt_install docker.io
		step_end
	fi
	mkdir -p "$DOCKER_DIR"
	clear_stale_engine_files
	step_begin "starting dockerd (log: $DOCKER_DIR/dockerd.log)"
	# setsid: the engine outlives this script and the shell job that ran it.
	setsid dockerd --host="unix://$DOCKER_SOCKET" >>"$DOCKER_DIR/dockerd.log" 2>&1 </dev/null 9>&- &
	echo $! >"$DOCKER_DIR/dockerd.pid"
	local deadline=$((SECONDS + ENGINE_WAIT_SECONDS))
	until docker_answers; do
		if ((SECONDS >= deadline)) || ! kill -0 "$(cat "$DOCKER_DIR/dockerd.pid")" 2>/dev/null; then
			printf '\n' >&2
			tail -n 15 "$DOCKER_DIR/dockerd.log" | sed 's/^/    /' >&2
			fail "Docker engine" "dockerd did not answer on $DOCKER_SOCKET within ${ENGINE_WAIT_SECONDS} s; see $DOCKER_DIR/dockerd.log"
		fi
		sleep 1
	done
	step_end
	ENGINE_READY=1
}
