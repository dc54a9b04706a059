#!/bin/bash
# Container health: every configured listener accepts a TCP connection. The probe is the shell's own
# /dev/tcp, so a check costs no Node.js process. The listeners' addresses are worked out once, by the first
# check after the container started (the proxy may have written its config by then), from the arguments the
# entry point started the proxy with and the same MTP_* environment; the entry point clears them on start.
set -eu
app_dir="${MTPROXY_HOME:-/opt/mtproxy}"
args_file="${MTPROXY_RUN_ARGS_FILE:-/tmp/mtproxy-run.args}"
targets_file="${MTPROXY_HEALTH_TARGETS_FILE:-/tmp/mtproxy-health.targets}"

if [ ! -s "$targets_file" ]; then
  tmp="$targets_file.$$"
  targets() {
    if [ -s "$args_file" ]; then
      # Drop the leading "run" (and --watch, which only run takes); doctor takes the same options.
      xargs -0 -a "$args_file" sh -c 'shift; for a; do shift; [ "$a" = --watch ] || set -- "$@" "$a"; done
        exec node "$0/bin/mtproxy.js" doctor --health-targets "$@"' "$app_dir"
    else
      node "$app_dir/bin/mtproxy.js" doctor --health-targets
    fi
  }
  if ! targets >"$tmp"; then
    rm -f "$tmp"
    exit 1
  fi
  mv -f "$tmp" "$targets_file"
fi

status=0
while read -r host port; do
  [ -n "$host" ] || continue
  if ! timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null; then
    echo "listener $host:$port does not accept connections"
    status=1
  fi
done <"$targets_file"
exit "$status"
