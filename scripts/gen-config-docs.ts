/**
 * Writes the README's configuration reference from the config schema, so the manual cannot drift from the
 * code. `node scripts/gen-config-docs.ts` rewrites the part of README.md between the markers;
 * `--check` only reports (exit 1) when it is out of date. test/deploy/readme.test.ts runs the same check.
 */
import { fileURLToPath } from 'node:url';
import { describeOptions, type OptionDoc } from '../src/config/schema.ts';
import { regenerateReadme, replaceMarkedBlock } from './readme-block.ts';

export const BEGIN_MARKER =
  '<!-- BEGIN CONFIG REFERENCE: generated from src/config/schema.ts by scripts/gen-config-docs.ts, do not edit -->';
export const END_MARKER = '<!-- END CONFIG REFERENCE -->';

/**
 * Example values (TOML) for options whose default does not show a typical use. Every option without a
 * default needs one here; the README test fails otherwise.
 */
export const EXAMPLES: Record<string, string> = {
  workers: '2',
  worker_mode: '"processes"',
  state_dir: '"/var/lib/mtproxy"',
  'listeners[].name': '"main"',
  'listeners[].port': '443',
  'listeners[].secret': '"0123456789abcdef0123456789abcdef"',
  'listeners[].secrets': '["fedcba9876543210fedcba9876543210"]',
  'listeners[].allowed_protocols': '["secure", "tls"]',
  'listeners[].ad_tag': '"3c09c680b76ee91a4c25ad51f742267d"',
  'listeners[].tls_domain': '"www.example.com"',
  'listeners[].tls_domains': '["cdn.example.net", "img.example.org"]',
  'listeners[].fronting': '"127.0.0.1:8443"',
  'listeners[].fronting_proxy_protocol': '"v2"',
  'listeners[].unknown_sni': '"reject"',
  'listeners[].no_sni_domain': '"cdn.example.org"',
  'listeners[].tls_time_skew': '"60s"',
  'listeners[].per_sni_salt': 'true',
  'listeners[].tls_cert_size': '2800',
  'listeners[].public_host': '"proxy.example.com"',
  'listeners[].max_connections': '20000',
  'upstream.mode': '"direct"',
  'upstream.prefer_ipv6': 'true',
  'upstream.dc': '{ 2 = ["149.154.167.51:443"], 4 = ["149.154.167.91:443"] }',
  'upstream.default_dc': '4',
  'upstream.connect_timeout': '"3s"',
  'upstream.connect_retries': '3',
  'upstream.min_connections_per_dc': '4',
  'upstream.clients_per_connection': '500',
  'telegram.proxy_secret': '"/etc/mtproxy/proxy-secret"',
  'telegram.proxy_config': '"/etc/mtproxy/proxy-multi.conf"',
  'telegram.proxy_config_v6': '"/etc/mtproxy/proxy-multi-v6.conf"',
  'telegram.refresh_interval': '"6h"',
  'telegram.http_timeout': '"10s"',
  'telegram.external_ip': '"10.0.0.5:203.0.113.5"',
  'telegram.ip_lookup_url': '""',
  'timeouts.handshake': '"30s"',
  'timeouts.idle': '"5m"',
  'timeouts.drain': '"30s"',
  'timeouts.fronting': '"30s"',
  'replay.enabled': 'false',
  'replay.max_entries': '5000000',
  'replay.max_age': '"24h"',
  'users[].name': '"alice"',
  'users[].secret': '"0123456789abcdef0123456789abcdef"',
  'users[].listeners': '["main"]',
  'users[].max_connections': '8',
  'users[].max_ips': '3',
  'users[].quota': '"50GB"',
  'users[].quota_period': '"monthly"',
  'users[].quota_reset_day': '1',
  'users[].rate': '"2MB"',
  'users[].expires': '"2027-06-01T00:00:00Z"',
  'users[].ad_tag': '"3c09c680b76ee91a4c25ad51f742267d"',
  'users[].note': '"customer 42"',
  'users[].tls_domains': '["cdn.example.net"]',
  'policies[].rule': '"max_connections"',
  'policies[].name': '"per-ip"',
  'policies[].keys': '["listener", "client_ipv4"]',
  'policies[].limit': '100',
  'policies[].key': '"client_ipv4/24"',
  'policies[].table': '"blocked"',
  'metrics.listen': '"127.0.0.1:9100"',
  'metrics.allow': '["127.0.0.0/8", "10.1.2.3"]',
  'admin.listen': '"127.0.0.1:9101"',
  'admin.token': '"a-long-random-string"',
  'log.level': '"debug"',
  'buffers.client_high_water_mark': '16384',
  'buffers.max_client_backlog': '262144',
  'buffers.fronting_max_bytes': '1048576',
  'cluster.role': '"front"',
  'cluster.backs': '["203.0.113.7:8443", "203.0.113.8:8443"]',
  'cluster.link_listen': '"0.0.0.0:8443"',
  'cluster.cert': '"/etc/mtproxy/cluster/front-1.crt"',
  'cluster.key': '"/etc/mtproxy/cluster/front-1.key"',
  'cluster.ca': '"/etc/mtproxy/cluster/ca.crt"',
  'cluster.redis': '"rediss://mtproxy:password@10.0.0.5:6380"',
  'cluster.redis_ca': '"/etc/mtproxy/redis-ca.crt"',
  'cluster.node_name': '"fra-1"',
};

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function code(text: string): string {
  return '`' + cell(text) + '`';
}

function heading(section: OptionDoc | null): string {
  if (!section) return '#### Top level';
  const name = section.key.replace(/\[\]$/, '');
  const toml = section.key.endsWith('[]') ? `[[${name}]]` : `[${name}]`;
  return `#### \`${toml}\`\n\n${section.description}${section.required ? ' Required.' : ''}`;
}

function row(o: OptionDoc, prefix: string): string {
  const name = o.key.slice(prefix.length);
  const def = o.required ? '*required*' : o.default === null ? '*unset*' : code(o.default);
  const example = EXAMPLES[o.key] ?? o.default;
  return `| ${code(name)} | ${cell(o.type)} | ${def} | ${example === null || example === undefined ? '' : code(example)} | ${cell(o.description)} |`;
}

/** Markdown for every option, grouped by table, in schema order. */
export function renderConfigReference(options: OptionDoc[] = describeOptions()): string {
  // A table with options under it gets its own heading; a table-valued leaf (upstream.dc) is a row.
  const sections = options.filter(
    (o) =>
      (o.type === 'table' || o.type === 'array of tables') &&
      options.some((other) => other.key.startsWith(`${o.key}.`)),
  );
  const sectionOf = (o: OptionDoc): OptionDoc | null => {
    let best: OptionDoc | null = null;
    for (const s of sections) {
      if (o.key.startsWith(`${s.key}.`) && (!best || s.key.length > best.key.length)) best = s;
    }
    return best;
  };
  const groups = new Map<OptionDoc | null, OptionDoc[]>([[null, []]]);
  for (const s of sections) groups.set(s, []);
  for (const o of options) {
    if (sections.includes(o)) continue;
    groups.get(sectionOf(o))?.push(o);
  }
  const parts: string[] = [];
  for (const [section, rows] of groups) {
    if (rows.length === 0) continue;
    const prefix = section ? `${section.key}.` : '';
    parts.push(
      heading(section),
      '',
      '| Option | Type | Default | Example | Description |',
      '|---|---|---|---|---|',
      ...rows.map((o) => row(o, prefix)),
      '',
    );
  }
  return parts.join('\n').trimEnd();
}

/** The README with its generated part replaced. Throws when the markers are missing. */
export function updateReadme(readme: string, reference = renderConfigReference()): string {
  return replaceMarkedBlock(readme, BEGIN_MARKER, END_MARKER, reference);
}

export function missingExamples(options: OptionDoc[] = describeOptions()): string[] {
  return options
    .filter(
      (o) => o.type !== 'table' && o.type !== 'array of tables' && o.default === null && !(o.key in EXAMPLES),
    )
    .map((o) => o.key);
}

function main(): void {
  const missing = missingExamples();
  if (missing.length > 0) {
    console.error(`gen-config-docs: add an example to EXAMPLES for: ${missing.join(', ')}`);
    process.exitCode = 1;
  }
  regenerateReadme('config reference', 'scripts/gen-config-docs.ts', (readme) => updateReadme(readme));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
