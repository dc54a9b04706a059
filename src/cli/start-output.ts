/**
 * What `run` says once it is up, besides the links. A person at a terminal gets where things are and what to do
 * next; a log collector (stdout not a terminal) gets the same facts as one JSON log line. Neither carries a
 * secret: the links stay on their own lines, never in the log.
 */
import { formatHostPort } from '../config/schema.ts';
import type { Config, HostPort } from '../config/types.ts';
import { loopbackFor } from '../config/links.ts';

export interface StartFacts {
  /** The config file, or null when it came from flags alone. */
  configFile: string | null;
  /** True when this start wrote that file. */
  created: boolean;
  stateDir: string;
  admin: string | null;
  metrics: string | null;
}

function url(address: HostPort | null, path = ''): string | null {
  return address
    ? `http://${formatHostPort({ host: loopbackFor(address.host), port: address.port })}${path}`
    : null;
}

export function startFacts(config: Config, configFile: string | null, created: boolean): StartFacts {
  return {
    configFile,
    created,
    stateDir: config.stateDir,
    admin: config.admin.listen && config.admin.token ? url(config.admin.listen) : null,
    metrics: url(config.metrics.listen, '/metrics'),
  };
}

/** The block a person reads under the links. */
export function startSummaryLines(facts: StartFacts): string[] {
  const configLine = facts.configFile
    ? `  config   ${facts.configFile}${facts.created ? ' (written now, with a new random secret)' : ''}`
    : '  config   none: from flags and environment only (mtproxy init writes a file)';
  const lines = [
    '',
    'mtproxy is running.',
    configLine,
    `  state    ${facts.stateDir}`,
    facts.admin
      ? `  admin    ${facts.admin} (mtproxy status, links, reload, table, user)`
      : '  admin    off: status, links, reload, table and user need [admin] in the config (mtproxy init adds it)',
  ];
  if (facts.metrics) lines.push(`  metrics  ${facts.metrics}`);
  lines.push(
    '',
    'Next:',
    '  - open a link above on a phone with Telegram, or scan its QR code',
    `  - mtproxy doctor${facts.configFile ? ` --config ${facts.configFile}` : ''}   checks the set-up, the cover domain and that the links reach this server`,
    '  - for a server: port 443 with a fake-TLS cover domain, under systemd or Docker (see the README)',
    '  - Ctrl-C stops it; open sessions get timeouts.drain to finish',
  );
  return lines;
}

/** The fields of the JSON log line `run` writes when stdout is not a terminal. */
export function startLogFields(facts: StartFacts): Record<string, unknown> {
  return {
    config: facts.configFile,
    ...(facts.created ? { created: true } : {}),
    stateDir: facts.stateDir,
    admin: facts.admin,
    metrics: facts.metrics,
  };
}
