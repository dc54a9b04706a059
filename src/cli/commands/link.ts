/**
 * `mtproxy link`: the links of the configured listeners, read from the config file (the proxy need not run).
 * With `--domain D`, the fake-TLS link for a user's own domain (per-SNI derived secret when a salt is set).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { configLinks, domainLink, linkHost, type ProxyLink } from '../../config/links.ts';
import { ConfigError } from '../../config/load.ts';
import { listenersNeedingAddress, publicAddressNotes } from '../../config/public-address.ts';
import { formatHostPort } from '../../config/schema.ts';
import { isDomainName } from '../../config/secrets.ts';
import { servesDomain } from '../../cover/domains.ts';
import { qrMatrix, qrPng, qrSvg, qrTerminal } from '../../links/qr.ts';
import type { CliCommand } from '../command.ts';
import { linkLines, missingTlsLinkNotes } from '../print-links.ts';

export const command: CliCommand = {
  name: 'link',
  summary: 'Print proxy links from the config; --domain D for a per-user fake-TLS link',
  details:
    "Each link with a QR code when stdout is a terminal (or with --qr); --png and --svg write the first link's QR code to a file. With --domain, one user's fake-TLS link (the per-SNI secret when per_sni_salt is set; without a salt only a domain in tls_domains is accepted, since the proxy would refuse any other).",
  usage:
    'link [--config FILE] [--listener NAME] [--domain DOMAIN] [--json] [--qr | --no-qr] [--png FILE] [--svg FILE]',
  options: {
    listener: { type: 'string', valueName: 'NAME', description: 'Only this listener' },
    domain: {
      type: 'string',
      valueName: 'DOMAIN',
      description: 'Fake-TLS link for this domain (per-SNI secret if salted)',
    },
    json: { type: 'boolean', description: 'One JSON object per link' },
    qr: { type: 'boolean', description: 'A QR code under each link (the default on a terminal)' },
    'no-qr': { type: 'boolean', description: 'No QR codes, even on a terminal' },
    png: { type: 'string', valueName: 'FILE', description: "Write the first link's QR code as PNG" },
    svg: { type: 'string', valueName: 'FILE', description: "Write the first link's QR code as SVG" },
  },
  async run(ctx) {
    const { config } = await ctx.loadConfig();
    const only = typeof ctx.values.listener === 'string' ? ctx.values.listener : null;
    const listeners = config.listeners.filter((l) => !only || l.name === only);
    if (listeners.length === 0)
      throw new ConfigError(
        '--listener',
        `expected one of: ${config.listeners.map((l) => l.name).join(', ')}`,
      );

    // Only a listener without public_host needs the address found (which may ask ip_lookup_url).
    const found =
      listenersNeedingAddress({ ...config, listeners }).length > 0
        ? await ctx.publicAddress(config)
        : { host: null, ipv6: null, source: 'interface' as const };
    const detect = () => found.host;
    let links: ProxyLink[];
    const domain = ctx.values.domain;
    if (typeof domain === 'string') {
      if (!isDomainName(domain))
        throw new ConfigError('--domain', 'expected a domain name such as "example.com"');
      const tls = listeners.filter((l) => l.allowedProtocols.includes('tls'));
      if (tls.length === 0) throw new ConfigError('--domain', 'expected a listener that allows "tls"');
      // Without a per-SNI salt a listener only answers fake-TLS for its own cover domains: a link for any
      // other name would be refused (unknown_sni), so none is printed.
      const serving = tls.filter((l) => l.perSniSalt !== null || servesDomain(l, domain));
      if (serving.length === 0) {
        const l = tls[0]!;
        throw new ConfigError(
          '--domain',
          `listener "${l.name}" does not serve "${domain}" (tls_domains: ${l.tlsDomains.join(', ')}) and has ` +
            'no per_sni_salt, so the proxy would refuse this link; add the domain to tls_domains or set per_sni_salt',
        );
      }
      links = serving.flatMap(
        (l) => domainLink(l, domain, { host: linkHost(config, l, detect), port: l.port }) ?? [],
      );
    } else {
      links = configLinks({ ...config, listeners }, undefined, detect, () => found.ipv6);
    }
    const first = links[0];
    const png = ctx.values.png;
    const svg = ctx.values.svg;
    if (first && (typeof png === 'string' || typeof svg === 'string')) {
      const modules = qrMatrix(first.https);
      const kind = first.domain ? `${first.protocol} ${first.domain}` : first.protocol;
      for (const [file, body] of [
        [png, () => qrPng(modules)],
        [svg, () => qrSvg(modules)],
      ] as const) {
        if (typeof file !== 'string') continue;
        const target = path.resolve(ctx.cwd, file);
        try {
          await writeFile(target, body());
        } catch (e) {
          throw new ConfigError(file, `cannot write the QR code: ${(e as Error).message}`);
        }
        ctx.err(`QR code of the ${kind} link of listener "${first.listener}" written to ${file}`);
      }
    }
    if (ctx.values.json) {
      for (const link of links) ctx.out(JSON.stringify(link));
    } else {
      const withQr = ctx.values['no-qr'] !== true && (ctx.values.qr === true || ctx.outIsTTY);
      const under = withQr ? (link: ProxyLink) => [qrTerminal(qrMatrix(link.https))] : undefined;
      const where = (name: string) => {
        const l = config.listeners.find((x) => x.name === name)!;
        return formatHostPort(l);
      };
      for (const line of linkLines(links, where, under)) ctx.out(line);
      if (typeof domain !== 'string') for (const line of missingTlsLinkNotes(listeners)) ctx.out(line);
      for (const line of publicAddressNotes({ ...config, listeners }, found)) ctx.out(line);
    }
    return 0;
  },
};
