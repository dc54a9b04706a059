#!/bin/sh
# Container health: every configured listener accepts a TCP connection. Uses the arguments the entry point
# started the proxy with, and the same MTP_* environment.
set -eu
app_dir="${MTPROXY_HOME:-/opt/mtproxy}"
args_file="${MTPROXY_RUN_ARGS_FILE:-/tmp/mtproxy-run.args}"

if [ -s "$args_file" ]; then
  # Drop the leading "run"; doctor takes the same options.
  exec xargs -0 -a "$args_file" sh -c 'shift; exec node "$0/bin/mtproxy.js" doctor --health "$@"' "$app_dir"
fi
exec node "$app_dir/bin/mtproxy.js" doctor --health
