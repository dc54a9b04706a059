/**
 * The console's files: its own pages, styles and ES modules from web/ next to this file, and the few
 * libraries it uses (preact, its hooks, htm, uPlot) straight from the installed packages, so `npm ci` is
 * the only set-up and the browser fetches nothing from anywhere but this server.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const WEB = fileURLToPath(new URL('./web/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webmanifest': 'application/manifest+json',
};

function packageFile(specifier: string, relative?: string): string {
  const entry = fileURLToPath(import.meta.resolve(specifier));
  return relative ? path.join(path.dirname(entry), relative) : entry;
}

/** URL (under /console/vendor/) → file of an installed package. */
function vendorFiles(): Record<string, string> {
  return {
    'preact.mjs': packageFile('preact'),
    'hooks.mjs': packageFile('preact/hooks'),
    'htm.mjs': packageFile('htm'),
    'uPlot.esm.js': packageFile('uplot', 'uPlot.esm.js'),
    'uPlot.min.css': packageFile('uplot', 'uPlot.min.css'),
  };
}

function load(file: string): Asset {
  let body = readFileSync(file);
  const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
  // Source maps are not shipped: drop the comment so the browser does not ask for them.
  if (type.startsWith('text/javascript')) {
    body = Buffer.from(body.toString('utf8').replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, '\n'));
  }
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

function walk(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix + entry.name;
    if (entry.isDirectory()) out.push(...walk(path.join(dir, entry.name), `${rel}/`));
    else if (TYPES[path.extname(entry.name)]) out.push(rel);
  }
  return out;
}

export class ConsoleAssets {
  /** web/ files by their path under web/ ("app/main.js"), and vendor files by "vendor/NAME". */
  readonly #files = new Map<string, Asset>();
  /** CSP hashes of the inline scripts of index.html (its import map). */
  readonly scriptHashes: string[] = [];

  constructor() {
    for (const rel of walk(WEB)) this.#files.set(rel, load(path.join(WEB, rel)));
    for (const [name, file] of Object.entries(vendorFiles())) this.#files.set(`vendor/${name}`, load(file));
    const index = this.#files.get('index.html');
    if (index) {
      for (const m of index.body
        .toString('utf8')
        .matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)) {
        this.scriptHashes.push(`'sha256-${createHash('sha256').update(m[1]).digest('base64')}'`);
      }
    }
  }

  get(rel: string): Asset | undefined {
    return this.#files.get(rel);
  }

  /** Every file's path (tests check that none is served without a session unless public). */
  list(): string[] {
    return [...this.#files.keys()];
  }
}

let shared: ConsoleAssets | null = null;

/** Read once per process, on the first console request. */
export function consoleAssets(): ConsoleAssets {
  shared ??= new ConsoleAssets();
  return shared;
}
