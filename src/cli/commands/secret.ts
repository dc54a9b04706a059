/** `mtproxy secret`: a new random secret (or the one given with -s) in plain, dd or ee form. */
import { ConfigError } from '../../config/load.ts';
import {
  formatSecret,
  formatSecretBase64url,
  generateSecret,
  isDomainName,
  parseClientSecret,
} from '../../config/secrets.ts';
import type { CliCommand } from '../command.ts';

export const command: CliCommand = {
  name: 'secret',
  summary: 'Generate a secret: plain (32 hex), --dd, or --ee --domain DOMAIN',
  usage: 'secret [--dd | --ee --domain DOMAIN [--base64]] [-s EXISTING]',
  options: {
    dd: { type: 'boolean', description: 'Padded-intermediate form: "dd" + secret' },
    ee: { type: 'boolean', description: 'Fake-TLS form: "ee" + secret + hex(domain); needs --domain' },
    domain: { type: 'string', valueName: 'DOMAIN', description: 'Cover domain for --ee' },
    base64: { type: 'boolean', description: 'Print the --ee secret in base64url instead of hex' },
  },
  run(ctx) {
    const { dd, ee, domain, base64 } = ctx.values;
    if (dd && ee) throw new ConfigError('--dd/--ee', 'expected only one of them');
    if (ee && (typeof domain !== 'string' || !isDomainName(domain))) {
      throw new ConfigError('--domain', 'expected a domain name such as "example.com" with --ee');
    }
    let secret: Buffer;
    const given = typeof ctx.values.secret === 'string' ? ctx.values.secret : undefined;
    if (given !== undefined) {
      const parsed = parseClientSecret(given);
      if (!parsed) throw new ConfigError('--secret', 'expected 32 hex characters');
      secret = parsed.secret;
    } else {
      secret = generateSecret();
    }
    if (ee) {
      const d = (domain as string).toLowerCase();
      ctx.out(base64 ? formatSecretBase64url(secret, d) : formatSecret('ee', secret, d));
    } else {
      ctx.out(formatSecret(dd ? 'dd' : 'plain', secret));
    }
    return 0;
  },
};
