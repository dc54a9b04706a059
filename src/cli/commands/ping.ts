/**
 * `mtproxy ping LINK`: time a Telegram round trip through any proxy link, per DC. Works against any MTProto
 * proxy, not only this one; needs no config.
 */
import { ConfigError } from '../../config/load.ts';
import { formatHostPort } from '../../config/schema.ts';
import type { TransportTag } from '../../protocol/obfuscated2.ts';
import { Progress } from '../../tools/progress.ts';
import {
  DEFAULT_PING_DCS,
  formatPingResult,
  formatPingSummary,
  type PingResult,
  parseProxyLink,
  pingLink,
} from '../../tools/ping.ts';
import type { CliCommand } from '../command.ts';

const TRANSPORTS: readonly TransportTag[] = ['abridged', 'intermediate', 'padded'];

function parseDcList(text: string): number[] {
  const ids = text.split(',').map((s) => s.trim());
  if (ids.length === 0 || !ids.every((s) => /^-?\d{1,3}$/.test(s) && Number(s) !== 0)) {
    throw new ConfigError('--dc', 'expected DC ids like 2 or 1,2,-2 (negative = media DC)');
  }
  return ids.map(Number);
}

function positiveInt(name: string, text: unknown, fallback: number): number {
  if (typeof text !== 'string') return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new ConfigError(name, 'expected a positive integer');
  return Number(text);
}

export const command: CliCommand = {
  name: 'ping',
  summary: 'Connect through a proxy link and time a req_pq round trip to each Telegram DC',
  usage: 'ping LINK [--dc 1,2,-2] [--timeout MS] [--repeat N] [--transport T] [--legacy-hello] [--json]',
  options: {
    dc: {
      type: 'string',
      valueName: 'IDS',
      description: `DC ids, comma-separated (default ${DEFAULT_PING_DCS.join(',')})`,
    },
    timeout: { type: 'string', valueName: 'MS', description: 'Timeout of each step (default 5000)' },
    repeat: {
      type: 'string',
      valueName: 'N',
      description: 'Attempts per DC; the fastest is shown (default 1)',
    },
    transport: {
      type: 'string',
      valueName: 'T',
      description: 'abridged, intermediate or padded (default: intermediate for plain, padded for dd/ee)',
    },
    'legacy-hello': { type: 'boolean', description: 'ee links: send the older 517-byte ClientHello' },
    json: { type: 'boolean', description: 'One JSON object per DC' },
  },
  async run(ctx) {
    const link = ctx.positionals[0];
    if (!link || ctx.positionals.length > 1) {
      ctx.err(
        'mtproxy ping: expected one proxy link, e.g. mtproxy ping "tg://proxy?server=…&port=…&secret=…"',
      );
      return 2;
    }
    let target: ReturnType<typeof parseProxyLink>;
    try {
      target = parseProxyLink(link);
    } catch (e) {
      ctx.err(`mtproxy ping: ${(e as Error).message}`);
      return 2;
    }
    const transport = ctx.values.transport;
    if (transport !== undefined && !TRANSPORTS.includes(transport as TransportTag)) {
      throw new ConfigError('--transport', 'expected abridged, intermediate or padded');
    }
    const dcs = typeof ctx.values.dc === 'string' ? parseDcList(ctx.values.dc) : DEFAULT_PING_DCS;
    const timeoutMs = positiveInt('--timeout', ctx.values.timeout, 5000);
    const repeat = positiveInt('--repeat', ctx.values.repeat, 1);
    const json = ctx.values.json === true;
    if (!json) {
      const domain = target.secret.domain ? `, cover domain ${target.secret.domain}` : '';
      ctx.out(
        `Pinging DC ${dcs.join(', ')} through ${formatHostPort(target)} (${target.secret.kind} secret${domain})`,
      );
    }
    const progress = Progress.onStderr();
    let current = `DC ${dcs[0]}`;
    progress.start(current);
    try {
      const results = await pingLink(
        target,
        {
          dcs,
          timeoutMs,
          repeat,
          transport: transport as TransportTag | undefined,
          helloShape: ctx.values['legacy-hello'] ? 'legacy' : 'modern',
        },
        (r: PingResult) => {
          progress.end(current);
          progress.clear();
          ctx.out(json ? JSON.stringify(r) : formatPingResult(r));
          const next = dcs[dcs.indexOf(r.dc) + 1];
          if (next !== undefined) progress.start((current = `DC ${next}`));
        },
      );
      if (!json) ctx.out(formatPingSummary(target, results));
      return results.every((r) => r.ok) ? 0 : 1;
    } finally {
      progress.stop();
    }
  },
};
