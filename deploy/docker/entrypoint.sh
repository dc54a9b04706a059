#!/bin/sh
# Container entry point, also installed as `mtproxy` in the image's PATH (`docker exec NAME mtproxy doctor`).
# Arguments are mtproxy's own: `docker run IMAGE -p 443 -s SECRET` means `mtproxy run -p 443 -s SECRET`.
# A config mounted at $MTPROXY_CONFIG is used when --config is not given. The run arguments are saved so
# that the health check sees the same listeners.
set -eu
app_dir="${MTPROXY_HOME:-/opt/mtproxy}"
config_file="${MTPROXY_CONFIG:-/etc/mtproxy/mtproxy.toml}"
args_file="${MTPROXY_RUN_ARGS_FILE:-/tmp/mtproxy-run.args}"
targets_file="${MTPROXY_HEALTH_TARGETS_FILE:-/tmp/mtproxy-health.targets}"

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- run "$@"
fi

command_name="$1"
shift
has_config=no
for arg in "$@"; do
  case "$arg" in
    -c | --config | --config=*) has_config=yes ;;
  esac
done
if [ "$has_config" = "no" ] && [ -z "${MTP_CONFIG:-}" ] && [ -f "$config_file" ]; then
  set -- --config "$config_file" "$@"
fi
set -- "$command_name" "$@"

if [ "$command_name" = "run" ]; then
  # NUL-separated, so any argument survives the round trip.
  { for arg in "$@"; do printf '%s\0' "$arg"; done; } >"$args_file" 2>/dev/null || true
  # The health check works out the listeners again for this run.
  rm -f "$targets_file"
fi

exec node "$app_dir/bin/mtproxy.js" "$@"
