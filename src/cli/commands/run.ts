/**
 * `mtproxy run` (the default): start the listeners, print the links, then run until SIGTERM/SIGINT, which stop
 * accepting and let open sessions drain for at most `timeouts.drain` (a second one, a second or more later,
 * exits at once). SIGHUP (or, with --watch, saving the file)
 * re-reads the config.
 */
import { watch } from 'node:fs';
import path from 'node:path';
import { configLinks, type ProxyLink } from '../../config/links.ts';
import { qrMatrix, qrTerminal } from '../../links/qr.ts';
import { publicAddressNotes } from '../../config/public-address.ts';
import { formatHostPort } from '../../config/schema.ts';
import { logger, setLogFormat, setLogLevel } from '../../log.ts';
import { ProxyServer } from '../../server/proxy.ts';
import { Supervisor } from '../../workers/supervisor.ts';
import type { CliCommand } from '../command.ts';
import { linkLines, missingTlsLinkNotes } from '../print-links.ts';
import { startFacts, startLogFields, startSummaryLines } from '../start-output.ts';

/** A second SIGINT/SIGTERM this soon after the first is the same Ctrl-C delivered twice, not a request to force. */
const SECOND_SIGNAL_GRACE_MS = 1000;

export const command: CliCommand = {
  name: 'run',
  summary: 'Run the proxy in the foreground (the default command)',
  details:
    'Starts the listeners and prints the links: on a terminal for a person, with QR codes, where the config and the state are and what to do next; otherwise the links and the same facts as one log line ("mtproxy started", in log.format). With no config file and no secret given, the first start writes mtproxy.toml with a new random secret, so the links stay the same. SIGINT or SIGTERM drains open sessions for at most timeouts.drain (a second one, a second or more later, stops at once); SIGHUP re-reads the config.',
  usage:
    'run [--config FILE] [--watch] [-p PORT] [-s SECRET] [-t TAG] [-a PROTO]... [--tls-domain DOMAIN]...',
  options: {
    watch: { type: 'boolean', description: 'Reload when the config file changes (env MTP_WATCH=1)' },
  },
  async run(ctx) {
    // `mtproxy run doctor` (or `npm start -- run doctor`) must not start a proxy the user did not ask for.
    if (ctx.positionals.length > 0) {
      ctx.err(`mtproxy run: unexpected argument "${ctx.positionals[0]}" (see mtproxy --help)`);
      return 2;
    }
    const loaded = await ctx.loadConfig({ createIfMissing: true });
    const { config } = loaded;
    setLogLevel(config.log.level);
    setLogFormat(config.log.format);
    for (const warning of config.warnings ?? []) logger.warn(warning);
    if (loaded.created) ctx.out(`Created ${loaded.created} with a new random secret.`);
    else if (!loaded.file && !ctx.values.secret && !ctx.env.MTP_SECRET) {
      ctx.err(
        'mtproxy: could not write mtproxy.toml here; the secret (and the links) will change on restart',
      );
    }

    const proxyOptions = { log: logger, loadConfig: async () => (await ctx.loadConfig()).config };
    // Several workers (threads or processes, src/workers), or worker processes asked for by name (a crash
    // then costs one restarted process); otherwise the proxy runs in this thread.
    // A node sharing state through Redis runs in one process: its Redis link is the one source of the fleet's
    // state here (worker threads would each need their own).
    const clustered = config.cluster.redis !== null;
    if (clustered && (config.workers > 1 || config.workerMode === 'processes')) {
      logger.warn({ workers: config.workers }, 'cluster.redis: this node runs in one process (workers = 1)');
    }
    const supervised = !clustered && (config.workers > 1 || config.workerMode === 'processes');
    const proxy = supervised ? new Supervisor(config, proxyOptions) : new ProxyServer(config, proxyOptions);
    // Signal handlers go in before anything is printed: a supervisor may signal as soon as it sees the links.
    let stopping = false;
    let started = false;
    let finish: (code: number) => void = () => {};
    const exitCode = new Promise<number>((resolve) => {
      finish = resolve;
    });
    let stoppingSince = 0;
    const shutdown = (signal: NodeJS.Signals) => {
      if (stopping) {
        // One Ctrl-C reaches us twice under npm (from the terminal and passed on by npm): only a second
        // signal sent deliberately, after the grace, skips the drain.
        if (Date.now() - stoppingSince < SECOND_SIGNAL_GRACE_MS) return;
        logger.warn({ signal }, 'second signal: exiting without waiting for sessions');
        finish(1);
        return;
      }
      stopping = true;
      stoppingSince = Date.now();
      if (!started) return; // start() finishes first, then stops (below)
      logger.info({ signal, drainMs: proxy.config.timeouts.drainMs }, 'shutting down: draining sessions');
      proxy.stop().then(
        () => finish(0),
        (e: Error) => {
          logger.error({ err: e.message }, 'error while stopping');
          finish(1);
        },
      );
    };
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);

    try {
      await proxy.start();
    } finally {
      started = true;
    }
    if (stopping) {
      await proxy.stop();
      return 0;
    }

    // Found once at start (an interface, or the middle mode's IP lookup); a reload reuses it.
    const found = await ctx.publicAddress(proxy.config);
    const printLinks = () => {
      const current = proxy.config;
      const port = (name: string) => proxy.address(name).port;
      const where = (name: string) => {
        const l = current.listeners.find((x) => x.name === name)!;
        return formatHostPort({ host: l.host, port: port(name) });
      };
      const links = configLinks(
        current,
        (l) => port(l.name),
        () => found.host,
        () => found.ipv6,
      );
      // A person at the terminal gets a QR code under each link, to scan with the phone.
      const under = ctx.outIsTTY ? (link: ProxyLink) => [qrTerminal(qrMatrix(link.https))] : undefined;
      for (const line of linkLines(links, where, under)) ctx.out(line);
      for (const line of missingTlsLinkNotes(current.listeners)) ctx.out(line);
      for (const line of publicAddressNotes(current, found)) ctx.out(line);
    };
    const reload = () => {
      void proxy.reloadFromFile().then((r) => {
        if (r.ok) printLinks();
        else ctx.err(`mtproxy: reload refused: ${r.error}`);
      });
    };
    process.on('SIGHUP', reload);
    if (loaded.file && (ctx.values.watch || ctx.env.MTP_WATCH === '1')) watchFile(loaded.file, reload);
    printLinks();
    // For a person: where things are and what to do next; for a collector: the same facts as a log line.
    const facts = startFacts(proxy.config, loaded.file, loaded.created !== null);
    if (ctx.outIsTTY) for (const line of startSummaryLines(facts)) ctx.out(line);
    else logger.info(startLogFields(facts), 'mtproxy started');
    return exitCode;
  },
};

/** Editors often replace the file instead of writing it, so the folder is watched; bursts of events coalesce. */
function watchFile(file: string, onChange: () => void): void {
  const name = path.basename(file);
  let timer: NodeJS.Timeout | null = null;
  const watcher = watch(path.dirname(file), (_event, changed) => {
    if (changed !== null && changed !== name) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      onChange();
    }, 200);
  });
  watcher.unref();
  watcher.on('error', (e) => logger.warn({ err: e.message }, 'config watch stopped'));
}
