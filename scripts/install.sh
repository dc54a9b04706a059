#!/usr/bin/env bash
# mtproxy installer for Debian/Ubuntu (any systemd Linux with bash and Node.js >= 22.12).
#
#   sudo scripts/install.sh                         # asks for port, secret, tag, protocols, TLS domain
#   sudo scripts/install.sh -p 443 -a tls -D www.example.com --yes
#   sudo scripts/install.sh --update               # new code from the checkout (or --source), same config
#   sudo scripts/install.sh --uninstall [--purge]
#
# Installs the proxy under /opt/mtproxy, creates the system user "mtproxy", writes /etc/mtproxy/mtproxy.toml
# with `mtproxy init` (with an admin API on 127.0.0.1 and a random token, so `mtproxy status` works), installs
# and starts the systemd unit, checks that the service came up, runs `mtproxy doctor` and prints the proxy
# links. Running it again is safe: the existing config (and its secret) is kept unless options change it.
# Node.js comes from the system (`node` in PATH), else from the distribution's package when it is new
# enough, else from the NodeSource apt repository; nothing is downloaded by hand. No third-party service is
# asked for this server's address: without --public-host the proxy finds it itself (as `mtproxy run` does)
# and `mtproxy doctor` checks that the links lead here.
#
# Testing and packaging: --root DIR installs into a throwaway root (no user, no npm, no systemctl, no network);
# --dry-run only prints what would be done.
set -euo pipefail

# Piped into bash (curl … | bash) there is no script file: then --source is needed.
readonly SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
readonly NODE_MIN_MAJOR=22
readonly NODE_MIN_MINOR=12
# NodeSource's apt repository (Debian/Ubuntu) for when the distribution's Node.js is too old.
readonly NODESOURCE_MAJOR="${MTPROXY_NODESOURCE_MAJOR:-24}"
readonly NODESOURCE_KEY_URL="https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key"
# Where the service keeps its state (the unit's StateDirectory).
readonly STATE_DIR=/var/lib/mtproxy

root=""
dry_run=no
assume_yes=no
action=install
purge=no
firewall=no
source_dir=""
node_bin=""
opt_port=""
opt_secret=""
opt_tag=""
opt_allow=()
opt_tls_domain=""
opt_public_host=""
opt_sysctl=no
check_cover=yes
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
  -D, --tls-domain DOMAIN  fake-TLS cover domain (a real HTTPS site; see the README); as in `mtproxy -D`
  -d, --dd-only            same as -a secure; as in `mtproxy -d`
      --public-host HOST   host name or IP put into the links (default: the public address the proxy
                           finds on this machine at start; set it behind NAT)
      --no-check           do not check the cover domain before writing the config (mtproxy init --no-check)

Installation:
      --source DIR|URL     proxy sources to install: a checkout, a .tar.gz (URL or file), or a git URL
                           (default: this script's checkout)
      --node PATH          Node.js binary to run the proxy with (default: `node` in PATH when >= 22.12, else
                           the distribution's nodejs package when new enough, else NodeSource's apt repository)
      --sysctl             also install /etc/sysctl.d/90-mtproxy.conf with the recommended kernel settings
      --firewall           also load the per-source SYN limit (mtproxy firewall apply; needs nft) now and at
                           every start of the service (a systemd drop-in)
  -y, --yes                never ask; use defaults for anything not given
      --update             install new code (this checkout or --source) and restart; the config is kept
      --uninstall          stop and remove the service and /opt/mtproxy (config and state are kept)
      --purge              with --uninstall: also remove /etc/mtproxy, /var/lib/mtproxy and the user

Testing:
      --root DIR           install below DIR instead of / (implies --no-user --no-npm --no-systemd --offline)
      --dry-run            print the actions, change nothing
      --no-user | --no-npm | --no-systemd | --offline
      --with-npm | --with-systemd | --online   the opposite, also under --root (stubbed commands in PATH)
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
      -D | --tls-domain) opt_tls_domain=${2:?$1 needs a value}; shift ;;
      -d | --dd-only)
        # -d means "dd only" here as in the mtproxy command; a value after it is an old-style cover domain.
        [[ $# -lt 2 || $2 == -* ]] ||
          die "-d means dd only (as in mtproxy -d) and takes no value; for the cover domain use -D $2 (--tls-domain)"
        opt_allow+=(secure) ;;
      --public-host) opt_public_host=${2:?$1 needs a value}; shift ;;
      --no-check) check_cover=no ;;
      --source) source_dir=${2:?$1 needs a value}; shift ;;
      --node) node_bin=${2:?$1 needs a value}; shift ;;
      --sysctl) opt_sysctl=yes ;;
      --firewall) firewall=yes ;;
      --update) action=update ;;
      --root) root=${2:?$1 needs a value}; shift ;;
      --dry-run) dry_run=yes ;;
      -y | --yes) assume_yes=yes ;;
      --uninstall) action=uninstall ;;
      --purge) purge=yes ;;
      --no-user) with_user=no ;;
      --no-npm) with_npm=no ;;
      --no-systemd) with_systemd=no ;;
      --offline) with_network=no ;;
      --with-npm) with_npm=yes ;;
      --with-systemd) with_systemd=yes ;;
      --online) with_network=yes ;;
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
dropin_file() { printf '%s/etc/systemd/system/mtproxy.service.d/firewall.conf' "$root"; }
nodesource_keyring() { printf '%s/usr/share/keyrings/nodesource.gpg' "$root"; }
nodesource_list() { printf '%s/etc/apt/sources.list.d/nodesource.list' "$root"; }

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

# Value of `key = "..."` (or a bare number) in the installed config, empty when absent.
existing_value() {
  local key=$1 file
  file=$(config_file)
  [[ -f $file ]] || return 0
  sed -n -E "s/^[[:space:]]*${key}[[:space:]]*=[[:space:]]*\"?([^\"#]*)\"?.*$/\\1/p" "$file" | head -n1 | sed -E 's/[[:space:]]+$//'
}

# Value of `key = "..."` inside `[section]` of the installed config, empty when absent.
existing_in_section() {
  local section=$1 key=$2 file
  file=$(config_file)
  [[ -f $file ]] || return 0
  awk -v want="[$section]" -v key="$key" '
    /^[[:space:]]*\[/ { gsub(/[[:space:]]/, ""); here = ($0 == want); next }
    here && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" {
      sub(/^[^=]*=[[:space:]]*"?/, ""); sub(/"?[[:space:]]*(#.*)?$/, ""); print; exit
    }' "$file"
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

# Major and minor of a Debian/RPM package version such as "22.14.0+dfsg-1" or "1:24.3.0-1nodesource1".
version_ok() {
  local v=${1#*:} major minor
  [[ $v =~ ^([0-9]+)\.([0-9]+) ]] || return 1
  major=${BASH_REMATCH[1]}
  minor=${BASH_REMATCH[2]}
  ((10#$major > NODE_MIN_MAJOR || (10#$major == NODE_MIN_MAJOR && 10#$minor >= NODE_MIN_MINOR)))
}

# The candidate version of the distribution's nodejs package, empty when there is none.
distro_node_candidate() {
  apt-cache policy nodejs 2>/dev/null | sed -n -E 's/^[[:space:]]*Candidate:[[:space:]]*//p' | head -n1 |
    sed -E 's/^\(none\)$//'
}

need_node_message() {
  printf 'Node.js >= %s.%s is needed: install it (e.g. from your distribution or https://github.com/nodesource/distributions) and pass --node PATH' \
    "$NODE_MIN_MAJOR" "$NODE_MIN_MINOR"
}

# apt-get without its own output; when it fails, its last error line ends up in the installer's message.
apt_error=""
apt_quiet() {
  if [[ $dry_run == yes ]]; then
    printf 'would run: apt-get %s\n' "$*"
    return
  fi
  local output rc=0
  output=$(DEBIAN_FRONTEND=noninteractive apt-get "$@" 2>&1 </dev/null) || rc=$?
  ((rc)) || return 0
  apt_error=$(printf '%s\n' "$output" | grep -E '^(E|Err):' | tail -n1 || true)
  [[ -n $apt_error ]] || apt_error=$(printf '%s\n' "$output" | tail -n1)
  apt_error=" (${apt_error:-exit status $rc})"
  return 1
}

# NodeSource's signed apt repository, the packaged way to a current Node.js on Debian and Ubuntu.
install_nodesource() {
  local keyring list
  keyring=$(nodesource_keyring)
  list=$(nodesource_list)
  command -v curl >/dev/null || die "curl is needed to add the NodeSource repository; or $(need_node_message)"
  command -v gpg >/dev/null || apt_quiet install -y -q gnupg ||
    die "could not install gnupg: apt-get failed$apt_error; or $(need_node_message)"
  say "Adding the NodeSource apt repository (Node.js $NODESOURCE_MAJOR.x): $list"
  if [[ $dry_run == yes ]]; then
    printf 'would download: %s\n' "$NODESOURCE_KEY_URL"
  else
    mkdir -p "$(dirname "$keyring")" "$(dirname "$list")"
    local key
    key=$(curl -fsSL -m 30 "$NODESOURCE_KEY_URL" 2>/dev/null) ||
      die "could not download the NodeSource signing key from $NODESOURCE_KEY_URL (no network, or a proxy is needed?); or $(need_node_message)"
    printf '%s\n' "$key" | gpg --dearmor --yes -o "$keyring" 2>/dev/null ||
      die "the NodeSource signing key from $NODESOURCE_KEY_URL is not a valid key"
    chmod 0644 "$keyring"
  fi
  printf 'deb [signed-by=/usr/share/keyrings/nodesource.gpg] https://deb.nodesource.com/node_%s.x nodistro main' \
    "$NODESOURCE_MAJOR" | write_file "$list" 0644
  apt_quiet update -q || die "apt-get update failed$apt_error after adding $list; check it, or $(need_node_message)"
  apt_quiet install -y -q nodejs || die "apt-get install nodejs failed$apt_error; or $(need_node_message)"
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
  [[ $with_network == yes ]] || die "$(need_node_message)"
  command -v apt-get >/dev/null || die "no Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR in PATH and no apt-get here: $(need_node_message)"
  apt_quiet update -q || die "apt-get update failed$apt_error; fix the package sources, or $(need_node_message)"
  local candidate
  candidate=$(distro_node_candidate)
  if [[ -n $candidate ]] && version_ok "$candidate"; then
    say "Installing the distribution's Node.js ($candidate)"
    apt_quiet install -y -q nodejs npm || die "apt-get install nodejs npm failed$apt_error; or $(need_node_message)"
  else
    note "the distribution's Node.js (${candidate:-none}) is older than $NODE_MIN_MAJOR.$NODE_MIN_MINOR"
    install_nodesource
  fi
  if [[ $dry_run == yes ]]; then
    node_bin=/usr/bin/node
    return
  fi
  hash -r
  found=$(command -v node) && check_node "$found" ||
    die "Node.js was installed but no node >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR is in PATH; pass --node PATH"
  node_bin=$found
}

collect_settings() {
  local default_port default_secret default_tag default_domain default_allow
  # The installed admin API is kept; a config without one gets it (mtproxy init makes the token).
  admin_listen=$(existing_in_section admin listen)
  admin_token=$(existing_in_section admin token)
  default_port=$(existing_value port)
  default_secret=$(existing_value secret)
  default_tag=$(existing_value ad_tag)
  default_domain=$(existing_value tls_domain)
  default_allow=$(existing_allow)
  installed_port=$default_port
  installed_secret=$default_secret
  installed_tag=$default_tag
  installed_domain=$default_domain
  installed_allow=$default_allow

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

  # The SYN limit: asked when not given; an installed drop-in is kept (and refreshed) unless answered "no".
  local had_firewall=no
  [[ -f $(dropin_file) ]] && had_firewall=yes
  if [[ $firewall == no ]] && interactive; then
    case $(ask "Per-source SYN limit (nftables) against the connection-rate block, yes or no" "$had_firewall") in
      y | yes) firewall=yes ;;
      *) [[ $had_firewall == yes ]] && firewall=remove ;;
    esac
  elif [[ $firewall == no && $had_firewall == yes ]]; then
    firewall=yes
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

is_ipv4() { [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; }
is_ipv6() { [[ $1 =~ ^\[?[0-9A-Fa-f:.]+\]?$ && $1 == *:*:* ]]; }

# The host for the links: --public-host, else the installed one, else none: the proxy then finds the public
# address itself at start (an address of this machine, or in middle mode the lookup it makes anyway).
choose_public_host() {
  installed_public_host=$(existing_value public_host)
  public_host=${opt_public_host:-$installed_public_host}
  [[ -n $public_host ]] || return 0
  is_ipv4 "$public_host" || is_ipv6 "$public_host" || is_domain "$public_host" ||
    die "--public-host: expected a host name or an IP address users can reach, got '$public_host'"
  public_host=${public_host#[}
  public_host=${public_host%]}
  public_host=${public_host,,}
}

# The arguments for `mtproxy init` that write the config for these settings.
init_args() {
  local allow_list
  allow_list=$(IFS=,; printf '%s' "${allow[*]}")
  init_argv=(init --yes --force --no-links --port "$port" --secret "$secret" --protocols "$allow_list"
    --state-dir "$STATE_DIR")
  if [[ -n $tls_domain ]]; then init_argv+=(--domain "$tls_domain"); else init_argv+=(--no-domain); fi
  if [[ -n $tag ]]; then init_argv+=(--ad-tag "$tag"); fi
  if [[ -n $public_host ]]; then init_argv+=(--public-host "$public_host"); fi
  init_argv+=(--admin)
  if [[ -n $admin_listen ]]; then init_argv+=(--admin-listen "$admin_listen"); fi
  if [[ -n $admin_token ]]; then init_argv+=(--admin-token "$admin_token"); fi
  if [[ $check_cover == no || $with_network == no ]]; then init_argv+=(--no-check); fi
  return 0
}

# Whether the installed config already says what was asked for (then it is kept as it is, hand edits too).
config_current() {
  [[ -f $(config_file) && -n $admin_token ]] || return 1
  local allow_list
  allow_list=$(IFS=,; printf '%s' "${allow[*]}")
  [[ $port == "$installed_port" && $secret == "${installed_secret,,}" && $tag == "${installed_tag,,}" &&
    $tls_domain == "${installed_domain,,}" && $allow_list == "$installed_allow" &&
    $public_host == "${installed_public_host,,}" ]]
}

render_unit() {
  local unit_source="$source_dir/deploy/systemd/mtproxy.service"
  [[ -f $unit_source ]] || die "missing $unit_source"
  # ExecStart, and the optional (commented) firewall lines.
  sed -E -e "s#^(\#?Exec(Start|StartPre|StopPost)=[-+]*)/usr/bin/node #\1$node_bin #" "$unit_source"
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
      --prefix "$dest" ||
      die "npm ci could not install the dependencies into $dest (see npm's output above; no network, or a registry proxy is needed?)"
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
    run useradd --system --home-dir /var/lib/mtproxy --no-create-home --shell /usr/sbin/nologin "$service_user" ||
      die "could not create the system user '$service_user' (useradd failed, see above)"
  fi
}

install_config() {
  local file
  file=$(config_file)
  if config_current; then
    note "config unchanged: $file"
  else
    init_args
    if [[ -f $file ]]; then
      say "Updating $file with mtproxy init (previous version kept as mtproxy.toml.bak)"
    else
      say "Writing $file with mtproxy init"
    fi
    if [[ $dry_run == yes ]]; then
      printf 'would run: mtproxy %s\n' "${init_argv[*]/#$secret/<secret>}"
      printf 'would write: %s (mode 0640)\n' "$file"
      return
    fi
    mkdir -p "$(config_dir)" "$(state_dir)"
    # Written beside the config, then moved over it: a failed init leaves the installed file as it was.
    local tmp="$file.new.$$" output
    if ! output=$(mtproxy_cli "${init_argv[@]}" --config "$tmp" 2>&1); then
      rm -f "$tmp"
      printf '%s\n' "$output" | grep -v '^Wrote ' | sed 's/^/    /'
      if [[ $output == *"cover domain"*"failed the check"* ]]; then
        die "the cover domain $tls_domain failed the check (see above): choose another with --tls-domain, or pass --no-check to keep it"
      fi
      die "mtproxy init could not write the config: $(printf '%s\n' "$output" | grep -v '^Wrote ' | tail -n1)"
    fi
    printf '%s\n' "$output" | grep -v '^Wrote ' | sed 's/^/    /' || true
    if [[ -f $file ]]; then cp -p "$file" "$file.bak"; fi
    chmod 0640 "$tmp"
    mv -f "$tmp" "$file"
  fi
  run mkdir -p "$(config_dir)" "$(state_dir)"
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
  run systemctl daemon-reload || die "systemctl daemon-reload failed: is systemd running here? (or use --no-systemd)"
  run systemctl enable mtproxy.service || die "systemctl enable mtproxy.service failed (see above)"
  # restart (not start) so a re-run picks up new code and config; a failure is reported by the check below.
  run systemctl restart mtproxy.service || note "systemctl restart mtproxy.service failed"
}

# The proxy's own command line, from the installed copy (works below --root too). Without npm (--no-npm) the
# installed copy has no dependencies: then the source checkout's are used, when it has them.
cli_dir=""
find_cli() {
  cli_dir=$(app_dir)
  [[ $dry_run == no ]] || return 0
  if [[ ! -d $cli_dir/node_modules && $with_npm == no ]]; then
    [[ -d $source_dir/node_modules ]] ||
      die "the mtproxy command needs its dependencies: run without --no-npm, or use a --source with node_modules"
    cli_dir=$source_dir
  fi
}
# stdin is never the command's: piped into bash, it is the rest of this script.
mtproxy_cli() { "$node_bin" "${cli_dir:-$(app_dir)}/bin/mtproxy.js" "$@" </dev/null; }

render_firewall_dropin() {
  cat <<UNIT
# Written by scripts/install.sh --firewall: load the per-source SYN limit before the proxy starts, remove it
# after it stopped ("+": as root, outside the sandbox; "-": the proxy starts even when nft fails).
[Service]
ExecStartPre=-+$node_bin /opt/mtproxy/bin/mtproxy.js firewall apply --config /etc/mtproxy/mtproxy.toml
ExecStopPost=-+$node_bin /opt/mtproxy/bin/mtproxy.js firewall remove --config /etc/mtproxy/mtproxy.toml
UNIT
}

install_firewall_dropin() {
  if [[ $firewall == remove ]]; then
    say "Removing the firewall rules and drop-in $(dropin_file)"
    if [[ $with_systemd == yes ]]; then
      run "$node_bin" "$(app_dir)/bin/mtproxy.js" firewall remove --config "$(config_file)" ||
        note "mtproxy firewall remove failed; remove the table by hand: nft delete table inet mtproxy"
    fi
    run rm -rf "$(dirname "$(dropin_file)")"
    return
  fi
  [[ $firewall == yes ]] || return 0
  if ! command -v nft >/dev/null; then
    if [[ $with_network == yes ]] && command -v apt-get >/dev/null; then
      say "Installing nftables (for --firewall)"
      apt_quiet install -y -q nftables || die "--firewall needs nft: apt-get install nftables failed$apt_error"
    else
      die "--firewall needs the nft command (package nftables); install it, or leave out --firewall"
    fi
  fi
  say "Installing the firewall drop-in $(dropin_file)"
  render_firewall_dropin | write_file "$(dropin_file)" 0644
}

apply_firewall() {
  [[ $firewall == yes ]] || return 0
  if [[ $with_systemd == no ]]; then
    note "skipped: mtproxy firewall apply (--no-systemd; the drop-in loads it at the next start)"
    return
  fi
  say "Loading the firewall rules (mtproxy firewall apply)"
  if [[ $dry_run == yes ]]; then
    printf 'would run: mtproxy firewall apply\n'
  elif ! mtproxy_cli firewall apply --config "$(config_file)" 2>&1 | sed 's/^/    /'; then
    die "mtproxy firewall apply failed (see above); the proxy runs without the SYN limit; fix it or re-run without --firewall"
  fi
}

health_ok() { mtproxy_cli doctor --health --config "$(config_file)" >/dev/null 2>&1; }

# The unit is "active" as soon as node started: also wait until every listener accepts connections.
verify_service() {
  if [[ $with_systemd == no ]]; then
    note "skipped: service check (--no-systemd)"
    return
  fi
  if [[ $dry_run == yes ]]; then
    printf 'would check: systemctl is-active mtproxy.service, and that the listeners accept connections\n'
    return
  fi
  say "Checking that mtproxy.service came up"
  local wait_s=${MTPROXY_INSTALL_START_WAIT:-20} i state=""
  for ((i = 0; i < wait_s * 2; i++)); do
    state=$(systemctl is-active mtproxy.service 2>/dev/null || true)
    if [[ $state == active ]] && health_ok; then
      note "mtproxy.service is running and its listeners accept connections"
      return
    fi
    [[ $state == active || $state == activating || $state == reloading ]] || ((i < 2)) || break
    sleep 0.5
  done
  printf '    last log lines (journalctl -u mtproxy):\n'
  journalctl -u mtproxy.service -n 30 --no-pager 2>/dev/null | sed 's/^/    /' || true
  die "mtproxy.service did not come up (state: ${state:-unknown}); see the log above, fix the cause, then: systemctl restart mtproxy"
}

run_doctor() {
  [[ $with_systemd == yes ]] || return 0
  if [[ $dry_run == yes ]]; then
    printf 'would run: mtproxy doctor\n'
    return
  fi
  say "Checking the set-up (mtproxy doctor)"
  local args=(doctor --config "$(config_file)")
  [[ $with_network == yes ]] || args+=(--offline)
  if ! mtproxy_cli "${args[@]}" 2>&1 | sed 's/^/    /'; then
    note "doctor found problems: fix what it says above, then run: mtproxy doctor"
  fi
}

# The links as the proxy prints them (`mtproxy link`: QR codes on a terminal), with the same public address.
print_links() {
  say "Proxy links (share them with your users)"
  if [[ $dry_run == yes ]]; then
    printf 'would run: mtproxy link\n'
  else
    local output qr=--no-qr
    [[ -t 1 ]] && qr=--qr
    output=$(mtproxy_cli link "$qr" --config "$(config_file)" 2>&1) ||
      die "mtproxy link failed: $(printf '%s\n' "$output" | tail -n1)"
    printf '%s\n' "$output"
    if [[ $output == *"only a guess"* ]]; then
      note "behind NAT or a cloud firewall, re-run with --public-host HOST (the address or name users connect to)"
    fi
  fi
  if [[ -n $tag ]]; then
    note "ad tag set: register the proxy with @MTProxybot using the plain secret to see the promoted channel"
  fi
  note "config: $(config_file)   status: mtproxy status (or systemctl status mtproxy)   logs: journalctl -u mtproxy -f"
  note "check the set-up: mtproxy doctor    test a link: mtproxy ping 'tg://proxy?…'    update: install.sh --update"
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
        tar -xzf "$source_dir" -C "$tmp" 2>/dev/null || die "could not unpack $source_dir (not a .tar.gz?)"
      else
        command -v curl >/dev/null || die "curl is needed to fetch $source_dir"
        curl -fsSL -m 300 "$source_dir" 2>/dev/null | tar -xz -C "$tmp" 2>/dev/null ||
          die "could not download or unpack $source_dir (no network, wrong URL, or not a .tar.gz)"
      fi
      ;;
    *://* | git@*)
      [[ $with_network == yes ]] || die "--source $source_dir needs the network (--offline is set)"
      command -v git >/dev/null || die "git is needed to fetch $source_dir"
      tmp=$(mktemp -d)
      fetched_dir=$tmp
      trap cleanup_fetched EXIT
      say "Cloning $source_dir"
      git clone --quiet --depth 1 "$source_dir" "$tmp/src" 2>/dev/null ||
        die "could not clone $source_dir (no network, or a wrong URL)"
      ;;
    *) return 0 ;;
  esac
  # Archives usually hold one top folder; use the folder that has package.json.
  local found
  found=$(find "$tmp" -maxdepth 2 -name package.json -print | head -n1)
  [[ -n $found ]] || die "no package.json in $source_dir"
  source_dir=$(dirname "$found")
}

# The launcher preloads jemalloc when the system has it: it gives back the memory a burst of sessions freed,
# where glibc's allocator keeps it. Best effort: the proxy runs without it.
install_allocator() {
  local lib
  # The launcher's list (bin/mtproxy.js).
  for lib in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/aarch64-linux-gnu/libjemalloc.so.2 \
    /usr/lib64/libjemalloc.so.2 /usr/lib/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2; do
    [[ -e $root$lib ]] && return
  done
  if [[ $with_network != yes ]] || ! command -v apt-get >/dev/null; then
    note "no jemalloc here (Debian/Ubuntu: apt-get install libjemalloc2): memory freed after a burst of sessions stays with the process"
    return
  fi
  say "Installing jemalloc (memory freed after bursts of sessions goes back to the system)"
  apt_quiet install -y -q libjemalloc2 ||
    note "apt-get install libjemalloc2 failed$apt_error; the proxy runs with the system's allocator"
}

do_install() {
  if [[ -z $source_dir ]]; then source_dir=$(cd "$SELF_DIR/.." && pwd); fi
  fetch_source
  [[ -f $source_dir/package.json && -d $source_dir/src ]] ||
    die "no proxy sources in $source_dir (pass --source DIR with a checkout)"
  collect_settings
  choose_public_host
  resolve_node
  if [[ $dry_run == no || -e $node_bin ]]; then node_bin=$(readlink -f "$node_bin"); fi
  install_allocator
  ensure_user
  install_app
  find_cli
  install_config
  install_command
  install_firewall_dropin
  install_unit
  verify_service
  apply_firewall
  run_doctor
  print_links
}

# New code, same config: copy the sources, reinstall the dependencies, command and unit, restart, check.
do_update() {
  [[ -f $(config_file) ]] || die "no installed config at $(config_file); run without --update to install"
  if [[ -z $source_dir ]]; then source_dir=$(cd "$SELF_DIR/.." && pwd); fi
  fetch_source
  [[ -f $source_dir/package.json && -d $source_dir/src ]] ||
    die "no proxy sources in $source_dir (pass --source DIR with a checkout)"
  resolve_node
  if [[ $dry_run == no || -e $node_bin ]]; then node_bin=$(readlink -f "$node_bin"); fi
  [[ $firewall == no && -f $(dropin_file) ]] && firewall=yes
  say "Updating mtproxy (config kept: $(config_file))"
  install_app
  find_cli
  install_command
  install_firewall_dropin
  install_unit
  verify_service
  apply_firewall
  run_doctor
  if [[ -z $(existing_in_section admin token) ]]; then
    note "the config has no [admin] section, so mtproxy status does not work; run the installer without --update to add one"
  fi
  say "Updated"
}

do_uninstall() {
  say "Uninstalling mtproxy"
  if [[ $with_systemd == yes ]]; then
    run systemctl disable --now mtproxy.service || true
  fi
  if [[ -e $(unit_file) ]]; then run rm -f "$(unit_file)"; fi
  if [[ -e $(dropin_file) ]]; then run rm -rf "$(dirname "$(dropin_file)")"; fi
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
    update) do_update ;;
    uninstall) do_uninstall ;;
  esac
}

main "$@"
