#!/usr/bin/env bash
# mtproxy installer for Debian/Ubuntu (any systemd Linux with bash and Node.js >= 22.12).
#
#   sudo scripts/install.sh                         # asks for port, secret, tag, protocols, TLS domain
#   sudo scripts/install.sh -p 443 -a tls -d www.example.com --yes
#   sudo scripts/install.sh --uninstall [--purge]
#
# Installs the proxy under /opt/mtproxy, creates the system user "mtproxy", writes /etc/mtproxy/mtproxy.toml,
# installs and starts the systemd unit and prints the proxy links. Running it again is safe: the existing
# config (and its secret) is kept unless options change it.
#
# Testing and packaging: --root DIR installs into a throwaway root (no user, no npm, no systemctl, no network);
# --dry-run only prints what would be done.
set -euo pipefail

# Piped into bash (curl … | bash) there is no script file: then --source is needed.
readonly SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
readonly NODE_MIN_MAJOR=22
readonly NODE_MIN_MINOR=12
readonly NODE_DIST_VERSION="${MTPROXY_NODE_VERSION:-latest-v24.x}"

root=""
dry_run=no
assume_yes=no
action=install
purge=no
source_dir=""
node_bin=""
opt_port=""
opt_secret=""
opt_tag=""
opt_allow=()
opt_tls_domain=""
opt_public_host=""
opt_sysctl=no
with_user=auto
with_npm=auto
with_systemd=auto
with_network=auto
service_user=mtproxy

usage() {
  cat <<'USAGE'
Usage: install.sh [options]

Proxy settings (asked interactively when missing and a terminal is attached):
  -p, --port PORT          port to listen on (default 443)
  -s, --secret HEX         32 hex characters (default: keep the installed one, else random)
  -t, --tag HEX            ad tag from @MTProxybot, 32 hex characters (enables middle-proxy mode)
  -a, --allow PROTO        allowed protocols: classic, secure (dd), tls (ee); repeat or comma-separate
                           (default: secure,tls when a TLS domain is set, else secure)
  -d, --tls-domain DOMAIN  fake-TLS cover domain (a real HTTPS site; see the README)
      --public-host HOST   host name or IP put into the links (default: detected public IPv4)

Installation:
      --source DIR|URL     proxy sources to install: a checkout, a .tar.gz (URL or file), or a git URL
                           (default: this script's checkout)
      --node PATH          Node.js binary to run the proxy with (default: `node` in PATH, else downloaded)
      --sysctl             also install /etc/sysctl.d/90-mtproxy.conf with the recommended kernel settings
  -y, --yes                never ask; use defaults for anything not given
      --uninstall          stop and remove the service and /opt/mtproxy (config and state are kept)
      --purge              with --uninstall: also remove /etc/mtproxy, /var/lib/mtproxy and the user

Testing:
      --root DIR           install below DIR instead of / (implies --no-user --no-npm --no-systemd --offline)
      --dry-run            print the actions, change nothing
      --no-user | --no-npm | --no-systemd | --offline
  -h, --help
USAGE
}

die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}
say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

# Every change goes through these helpers so --dry-run can print it instead.
run() {
  if [[ $dry_run == yes ]]; then
    printf 'would run: %s\n' "$*"
  else
    "$@"
  fi
}
write_file() { # write_file PATH MODE < content
  local path=$1 mode=$2 content
  content=$(cat)
  if [[ $dry_run == yes ]]; then
    printf 'would write: %s (mode %s)\n' "$path" "$mode"
    return
  fi
  mkdir -p "$(dirname "$path")"
  local tmp="$path.tmp.$$"
  printf '%s\n' "$content" >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
}

parse_args() {
  while (($#)); do
    case $1 in
      -p | --port) opt_port=${2:?$1 needs a value}; shift ;;
      -s | --secret) opt_secret=${2:?$1 needs a value}; shift ;;
      -t | --tag) opt_tag=${2:?$1 needs a value}; shift ;;
      -a | --allow) IFS=, read -ra more <<<"${2:?$1 needs a value}"; opt_allow+=("${more[@]}"); shift ;;
      -d | --tls-domain) opt_tls_domain=${2:?$1 needs a value}; shift ;;
      --public-host) opt_public_host=${2:?$1 needs a value}; shift ;;
      --source) source_dir=${2:?$1 needs a value}; shift ;;
      --node) node_bin=${2:?$1 needs a value}; shift ;;
      --sysctl) opt_sysctl=yes ;;
      --root) root=${2:?$1 needs a value}; shift ;;
      --dry-run) dry_run=yes ;;
      -y | --yes) assume_yes=yes ;;
      --uninstall) action=uninstall ;;
      --purge) purge=yes ;;
      --no-user) with_user=no ;;
      --no-npm) with_npm=no ;;
      --no-systemd) with_systemd=no ;;
      --offline) with_network=no ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
  done
  if [[ -n $root ]]; then
    [[ $root == /* ]] || root="$(pwd)/$root"
    root=${root%/}
    [[ $with_user == auto ]] && with_user=no
    [[ $with_npm == auto ]] && with_npm=no
    [[ $with_systemd == auto ]] && with_systemd=no
    [[ $with_network == auto ]] && with_network=no
  fi
  [[ $with_user == auto ]] && with_user=yes
  [[ $with_npm == auto ]] && with_npm=yes
  [[ $with_systemd == auto ]] && with_systemd=yes
  [[ $with_network == auto ]] && with_network=yes
  if [[ -z $root && $dry_run == no && $(id -u) -ne 0 ]]; then
    die "run as root (sudo), or use --root DIR / --dry-run"
  fi
  return 0
}

# Paths, all below the (optional) throwaway root.
app_dir() { printf '%s/opt/mtproxy' "$root"; }
config_dir() { printf '%s/etc/mtproxy' "$root"; }
config_file() { printf '%s/etc/mtproxy/mtproxy.toml' "$root"; }
state_dir() { printf '%s/var/lib/mtproxy' "$root"; }
unit_file() { printf '%s/etc/systemd/system/mtproxy.service' "$root"; }
sysctl_file() { printf '%s/etc/sysctl.d/90-mtproxy.conf' "$root"; }
command_file() { printf '%s/usr/local/bin/mtproxy' "$root"; }

is_hex32() { [[ $1 =~ ^[0-9a-fA-F]{32}$ ]]; }
is_port() { [[ $1 =~ ^[0-9]+$ ]] && ((10#$1 > 0 && 10#$1 < 65536)); }
is_domain() { [[ $1 =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ && $1 == *.* ]]; }

# Piped into bash, stdin is the script: questions then go to the terminal, if there is one.
# MTPROXY_INSTALL_ANSWERS_ON_STDIN=1 (tests): ask anyway and read the answers from stdin.
interactive() {
  [[ $assume_yes == no ]] || return 1
  [[ -n ${MTPROXY_INSTALL_ANSWERS_ON_STDIN:-} || -t 0 ]] || { [[ -t 1 ]] && [[ -r /dev/tty ]]; }
}
ask() { # ask PROMPT DEFAULT -> answer on stdout
  local answer=""
  if [[ -n ${MTPROXY_INSTALL_ANSWERS_ON_STDIN:-} ]]; then
    read -r answer || true
    printf '%s [%s]: %s\n' "$1" "$2" "$answer" >&2
  else
    read -r -p "$1 [$2]: " answer </dev/tty || true
  fi
  printf '%s' "${answer:-$2}"
}

random_hex16() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
to_hex() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'; }

# Value of `key = "..."` (or a bare number) in the installed config, empty when absent.
existing_value() {
  local key=$1 file
  file=$(config_file)
  [[ -f $file ]] || return 0
  sed -n -E "s/^[[:space:]]*${key}[[:space:]]*=[[:space:]]*\"?([^\"#]*)\"?.*$/\\1/p" "$file" | head -n1 | sed -E 's/[[:space:]]+$//'
}

existing_allow() {
  local file
  file=$(config_file)
  [[ -f $file ]] || return 0
  sed -n -E 's/^[[:space:]]*allowed_protocols[[:space:]]*=[[:space:]]*\[(.*)\].*$/\1/p' "$file" | head -n1 | tr -d ' "'
}

check_node() {
  local candidate=$1 version major minor
  version=$("$candidate" -p 'process.versions.node' 2>/dev/null) || return 1
  major=${version%%.*}
  minor=${version#*.}
  minor=${minor%%.*}
  ((major > NODE_MIN_MAJOR || (major == NODE_MIN_MAJOR && minor >= NODE_MIN_MINOR)))
}

resolve_node() {
  if [[ -n $node_bin ]]; then
    check_node "$node_bin" || die "$node_bin is not Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR"
    return
  fi
  local found
  if found=$(command -v node) && check_node "$found"; then
    node_bin=$found
    return
  fi
  [[ $with_network == yes ]] || die "Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR not found; pass --node PATH"
  # A distribution's packaged Node is usually too old: fetch the official Linux build into /opt/mtproxy/node.
  local arch
  case $(uname -m) in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "no official Node.js build for $(uname -m); install Node.js >= 24 and pass --node" ;;
  esac
  local base="https://nodejs.org/dist/$NODE_DIST_VERSION" tarball
  say "Downloading Node.js ($NODE_DIST_VERSION, linux-$arch) into $(app_dir)/node"
  if [[ $dry_run == yes ]]; then
    node_bin="$(app_dir)/node/bin/node"
    printf 'would download: %s\n' "$base"
    return
  fi
  tarball=$(curl -fsSL "$base/SHASUMS256.txt" | awk -v a="linux-$arch.tar.xz" '$2 ~ a"$" {print $2; exit}')
  [[ -n $tarball ]] || die "could not find a Node.js build at $base"
  local tmp
  tmp=$(mktemp -d)
  curl -fsSL -o "$tmp/$tarball" "$base/$tarball"
  (cd "$tmp" && curl -fsSL "$base/SHASUMS256.txt" | grep " $tarball\$" | sha256sum -c --quiet -) ||
    die "Node.js download failed its checksum"
  mkdir -p "$(app_dir)/node"
  tar -xJf "$tmp/$tarball" -C "$(app_dir)/node" --strip-components=1
  rm -rf "$tmp"
  node_bin="$(app_dir)/node/bin/node"
}

collect_settings() {
  local default_port default_secret default_tag default_domain default_allow
  default_port=$(existing_value port)
  default_secret=$(existing_value secret)
  default_tag=$(existing_value ad_tag)
  default_domain=$(existing_value tls_domain)
  default_allow=$(existing_allow)

  port=${opt_port:-}
  secret=${opt_secret:-}
  tag=${opt_tag:-}
  tls_domain=${opt_tls_domain:-}
  if interactive; then
    [[ -n $port ]] || port=$(ask "Port to listen on" "${default_port:-443}")
    [[ -n $secret ]] || secret=$(ask "Secret (32 hex, empty = random)" "${default_secret:-random}")
    [[ -n $tag ]] || tag=$(ask "Ad tag from @MTProxybot (32 hex, empty = none)" "${default_tag:-none}")
    [[ -n $tls_domain ]] || tls_domain=$(ask "Fake-TLS cover domain (empty = no fake-TLS)" "${default_domain:-none}")
  fi
  if interactive; then
    # Answers are final: "none" removes a tag or domain the installed config had.
    [[ $secret == random ]] && secret=$(random_hex16)
    [[ $tag == none ]] && tag=""
    [[ $tls_domain == none ]] && tls_domain=""
  else
    tag=${tag:-$default_tag}
    tls_domain=${tls_domain:-$default_domain}
  fi
  port=${port:-${default_port:-443}}
  secret=${secret:-$default_secret}
  [[ -n $secret ]] || secret=$(random_hex16)

  is_port "$port" || die "--port: expected 1..65535, got '$port'"
  is_hex32 "$secret" || die "--secret: expected 32 hex characters (without dd/ee prefix)"
  secret=${secret,,}
  if [[ -n $tag ]]; then
    is_hex32 "$tag" || die "--tag: expected 32 hex characters"
    tag=${tag,,}
  fi
  if [[ -n $tls_domain ]]; then
    is_domain "$tls_domain" || die "--tls-domain: expected a domain name like www.example.com"
    tls_domain=${tls_domain,,}
  fi

  if interactive && ((${#opt_allow[@]} == 0)); then
    local suggested=secure
    [[ -n $tls_domain ]] && suggested=secure,tls
    [[ -n $default_allow ]] && suggested=$default_allow
    IFS=', ' read -ra opt_allow <<<"$(ask "Allowed protocols: classic, secure (dd), tls (ee)" "$suggested")"
  fi

  allow=()
  local p
  if ((${#opt_allow[@]})); then
    for p in "${opt_allow[@]}"; do
      case ${p,,} in
        classic | normal | plain) allow+=(classic) ;;
        secure | dd) allow+=(secure) ;;
        tls | ee | fake-tls) allow+=(tls) ;;
        '') ;;
        *) die "--allow: expected classic, secure or tls, got '$p'" ;;
      esac
    done
  elif [[ -n $default_allow && -z $opt_tls_domain ]]; then
    IFS=, read -ra allow <<<"$default_allow"
  elif [[ -n $tls_domain ]]; then
    allow=(secure tls)
  else
    allow=(secure)
  fi
  # De-duplicate, keep a stable order.
  local ordered=() want
  for want in classic secure tls; do
    for p in "${allow[@]}"; do
      if [[ $p == "$want" ]]; then ordered+=("$want"); break; fi
    done
  done
  allow=("${ordered[@]}")
  ((${#allow[@]})) || die "--allow: at least one protocol is needed"
  if [[ " ${allow[*]} " == *" tls "* && -z $tls_domain ]]; then
    die "fake-TLS (tls) needs a cover domain: pass --tls-domain"
  fi
}

detect_public_host() {
  public_host=${opt_public_host:-$(existing_value public_host)}
  [[ -n $public_host ]] && return
  if [[ $with_network == yes ]] && command -v curl >/dev/null; then
    public_host=$(curl -fsS4 -m 5 https://api.ipify.org 2>/dev/null || true)
  fi
  if [[ -z $public_host ]]; then
    public_host=$(hostname -I 2>/dev/null | awk '{print $1}' || true)
  fi
  public_host=${public_host:-127.0.0.1}
}

render_config() {
  local allow_toml="" p
  for p in "${allow[@]}"; do allow_toml+="${allow_toml:+, }\"$p\""; done
  cat <<TOML
# mtproxy configuration, written by scripts/install.sh. Every option is described in the README
# ("Configuration reference"). Apply changes without dropping clients: systemctl reload mtproxy
state_dir = "/var/lib/mtproxy"

[[listeners]]
name = "main"
host = "0.0.0.0"
port = $port
secret = "$secret"
allowed_protocols = [$allow_toml]
public_host = "$public_host"
TOML
  if [[ -n $tls_domain ]]; then printf 'tls_domain = "%s"\n' "$tls_domain"; fi
  if [[ -n $tag ]]; then printf 'ad_tag = "%s"\n' "$tag"; fi
  cat <<'TOML'

[upstream]
# "auto" uses Telegram's middle proxies when the listener has an ad tag, else connects to the DCs directly.
mode = "auto"
TOML
}

render_unit() {
  local unit_source="$source_dir/deploy/systemd/mtproxy.service"
  [[ -f $unit_source ]] || die "missing $unit_source"
  sed -e "s#^ExecStart=/usr/bin/node #ExecStart=$node_bin #" "$unit_source"
}

render_sysctl() {
  cat <<'SYSCTL'
# Recommended kernel settings for mtproxy (see the README, "Kernel tuning").
fs.file-max = 2097152
net.core.somaxconn = 8192
net.ipv4.tcp_max_syn_backlog = 8192
net.ipv4.tcp_max_orphans = 262144
net.ipv4.tcp_fin_timeout = 20
net.ipv4.ip_local_port_range = 10240 65535
net.netfilter.nf_conntrack_max = 1048576
net.netfilter.nf_conntrack_tcp_timeout_established = 7200
SYSCTL
}

install_app() {
  local dest
  dest=$(app_dir)
  say "Installing the proxy into $dest"
  local item
  run mkdir -p "$dest"
  for item in package.json package-lock.json bin src deploy README.md CHANGELOG.md; do
    [[ -e $source_dir/$item ]] || continue
    run rm -rf "${dest:?}/$item"
    run cp -R "$source_dir/$item" "$dest/$item"
  done
  if [[ $with_npm == yes ]]; then
    say "Installing production dependencies (npm ci --omit=dev)"
    local npm_bin
    npm_bin=$(dirname "$node_bin")/npm
    [[ -x $npm_bin ]] || npm_bin=$(command -v npm) || die "npm not found next to $node_bin"
    run env PATH="$(dirname "$node_bin"):$PATH" "$npm_bin" ci --omit=dev --ignore-scripts --no-audit --no-fund \
      --prefix "$dest"
  else
    note "skipped: npm ci (--no-npm)"
  fi
}

ensure_user() {
  if [[ $with_user == no ]]; then
    note "skipped: system user '$service_user' (--no-user)"
    return
  fi
  if id -u "$service_user" >/dev/null 2>&1; then
    note "user '$service_user' exists"
  else
    say "Creating system user '$service_user'"
    run useradd --system --home-dir /var/lib/mtproxy --no-create-home --shell /usr/sbin/nologin "$service_user"
  fi
}

install_config() {
  local file new_content
  file=$(config_file)
  new_content=$(render_config)
  if [[ -f $file ]] && [[ "$(cat "$file")" == "$new_content" ]]; then
    note "config unchanged: $file"
    return
  fi
  if [[ -f $file ]]; then
    say "Updating $file (previous version kept as mtproxy.toml.bak)"
    run cp -p "$file" "$file.bak"
  else
    say "Writing $file"
  fi
  run mkdir -p "$(config_dir)" "$(state_dir)"
  printf '%s' "$new_content" | write_file "$file" 0640
  if [[ $with_user == yes ]]; then
    run chown "root:$service_user" "$(config_dir)" "$file"
    run chmod 0750 "$(config_dir)"
    run chown "$service_user:$service_user" "$(state_dir)"
    run chmod 0750 "$(state_dir)"
  fi
}

# `mtproxy` in PATH for the operator, pointed at the installed config (a --config flag still wins).
render_command() {
  cat <<WRAPPER
#!/bin/sh
# mtproxy command line, installed by scripts/install.sh.
: "\${MTP_CONFIG:=/etc/mtproxy/mtproxy.toml}"
export MTP_CONFIG
exec $node_bin /opt/mtproxy/bin/mtproxy.js "\$@"
WRAPPER
}

install_command() {
  say "Installing the command $(command_file)"
  render_command | write_file "$(command_file)" 0755
}

install_unit() {
  local file
  file=$(unit_file)
  say "Installing the systemd unit $file"
  render_unit | write_file "$file" 0644
  if [[ $opt_sysctl == yes ]]; then
    say "Installing kernel settings $(sysctl_file)"
    render_sysctl | write_file "$(sysctl_file)" 0644
    if [[ $with_systemd == yes ]]; then run sysctl --system >/dev/null; fi
  fi
  if [[ $with_systemd == no ]]; then
    note "skipped: systemctl daemon-reload / enable / restart (--no-systemd)"
    return
  fi
  run systemctl daemon-reload
  run systemctl enable mtproxy.service
  # restart (not start) so a re-run picks up new code and config.
  run systemctl restart mtproxy.service
}

print_links() {
  local server=$public_host p secret_form
  [[ $server == *:* ]] && server="[$server]"
  say "Proxy links (share them with your users)"
  for p in "${allow[@]}"; do
    case $p in
      classic) secret_form=$secret ;;
      secure) secret_form="dd$secret" ;;
      tls) secret_form="ee$secret$(to_hex "$tls_domain")" ;;
    esac
    printf '  %-7s tg://proxy?server=%s&port=%s&secret=%s\n' "$p" "$server" "$port" "$secret_form"
    printf '  %-7s https://t.me/proxy?server=%s&port=%s&secret=%s\n' "" "$server" "$port" "$secret_form"
  done
  if [[ -n $tag ]]; then
    note "ad tag set: register the proxy with @MTProxybot using the plain secret to see the promoted channel"
  fi
  note "config: $(config_file)   status: systemctl status mtproxy   logs: journalctl -u mtproxy -f"
  note "check the set-up: mtproxy doctor    test a link: mtproxy ping 'tg://proxy?…'"
}

# A --source that is not a folder: fetch it into a temporary one (removed on exit).
fetched_dir=""
cleanup_fetched() { if [[ -n $fetched_dir ]]; then rm -rf "$fetched_dir"; fi; }

fetch_source() {
  local tmp
  case $source_dir in
    *.tar.gz | *.tgz)
      [[ $source_dir == file://* || $source_dir == /* || $with_network == yes ]] ||
        die "--source $source_dir needs the network (--offline is set)"
      tmp=$(mktemp -d)
      fetched_dir=$tmp
      trap cleanup_fetched EXIT
      say "Fetching $source_dir"
      if [[ $source_dir == /* ]]; then
        tar -xzf "$source_dir" -C "$tmp"
      else
        curl -fsSL "$source_dir" | tar -xz -C "$tmp"
      fi
      ;;
    *://* | git@*)
      [[ $with_network == yes ]] || die "--source $source_dir needs the network (--offline is set)"
      command -v git >/dev/null || die "git is needed to fetch $source_dir"
      tmp=$(mktemp -d)
      fetched_dir=$tmp
      trap cleanup_fetched EXIT
      say "Cloning $source_dir"
      git clone --quiet --depth 1 "$source_dir" "$tmp/src"
      ;;
    *) return 0 ;;
  esac
  # Archives usually hold one top folder; use the folder that has package.json.
  local found
  found=$(find "$tmp" -maxdepth 2 -name package.json -print | head -n1)
  [[ -n $found ]] || die "no package.json in $source_dir"
  source_dir=$(dirname "$found")
}

do_install() {
  if [[ -z $source_dir ]]; then source_dir=$(cd "$SELF_DIR/.." && pwd); fi
  fetch_source
  [[ -f $source_dir/package.json && -d $source_dir/src ]] ||
    die "no proxy sources in $source_dir (pass --source DIR with a checkout)"
  collect_settings
  resolve_node
  if [[ $dry_run == no || -e $node_bin ]]; then node_bin=$(readlink -f "$node_bin"); fi
  detect_public_host
  ensure_user
  install_app
  install_config
  install_command
  install_unit
  print_links
}

do_uninstall() {
  say "Uninstalling mtproxy"
  if [[ $with_systemd == yes ]]; then
    run systemctl disable --now mtproxy.service || true
  fi
  if [[ -e $(unit_file) ]]; then run rm -f "$(unit_file)"; fi
  if [[ $with_systemd == yes ]]; then run systemctl daemon-reload; fi
  if [[ -e $(sysctl_file) ]]; then run rm -f "$(sysctl_file)"; fi
  if [[ -e $(command_file) ]]; then run rm -f "$(command_file)"; fi
  if [[ -e $(app_dir) ]]; then run rm -rf "$(app_dir)"; fi
  if [[ $purge == yes ]]; then
    run rm -rf "$(config_dir)" "$(state_dir)"
    if [[ $with_user == yes ]] && id -u "$service_user" >/dev/null 2>&1; then run userdel "$service_user"; fi
    note "removed config, state and user"
  else
    note "kept $(config_file) and $(state_dir) (use --purge to remove them)"
  fi
}

main() {
  parse_args "$@"
  case $action in
    install) do_install ;;
    uninstall) do_uninstall ;;
  esac
}

main "$@"
