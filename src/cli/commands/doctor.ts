/**
 * `mtproxy doctor`: check the set-up (config, limits, ports, cover domain, clock, Telegram reachability) and
 * say what to fix. `--health` only checks that the listeners accept connections (the container health check).
 */
import { loopbackFor } from '../../config/links.ts';
import { ConfigError } from '../../config/load.ts';
import type { Config } from '../../config/types.ts';
import {
  type CheckResult,
  checkHealth,
  doctorExitCode,
  formatResult,
  runDoctor,
} from '../../tools/doctor.ts';
import { Progress } from '../../tools/progress.ts';
import type { CliCommand } from '../command.ts';

export const command: CliCommand = {
  name: 'doctor',
  summary: 'Check the config, limits, ports, cover domain, clock and Telegram reachability',
  details:
    "Also checks that the link host reaches this server: it is an address of this machine, or a TCP connection to it reaches this proxy's own listener (behind NAT, forward the port). Exits 1 when a check fails.",
  usage: 'doctor [--config FILE] [--offline] [--timeout MS] [--health] [--health-targets] [--json]',
  options: {
    offline: { type: 'boolean', description: 'Skip the checks that need the network' },
    timeout: { type: 'string', valueName: 'MS', description: 'Timeout of each network check (default 3000)' },
    health: {
      type: 'boolean',
      description: 'Only check that every listener accepts connections; quiet when ok',
    },
    'health-targets': {
      type: 'boolean',
      description: 'Print "HOST PORT" per listener, the addresses --health connects to, and exit',
    },
    json: { type: 'boolean', description: 'One JSON object per check' },
  },
  async run(ctx) {
    const timeoutText = typeof ctx.values.timeout === 'string' ? ctx.values.timeout : '3000';
    if (!/^\d+$/.test(timeoutText) || Number(timeoutText) < 1) {
      throw new ConfigError('--timeout', 'expected a number of milliseconds');
    }
    const timeoutMs = Number(timeoutText);
    const print = (r: CheckResult) => ctx.out(ctx.values.json ? JSON.stringify(r) : formatResult(r));

    let config: Config;
    try {
      ({ config } = await ctx.loadConfig());
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      print({
        check: 'config',
        status: 'fail',
        message: e.message,
        fix: 'fix that key (every option is in the README), or pass --config FILE',
      });
      return 1;
    }

    if (ctx.values['health-targets']) {
      for (const l of config.listeners) ctx.out(`${loopbackFor(l.host)} ${l.port}`);
      return 0;
    }

    if (ctx.values.health) {
      const results = await checkHealth(config, Math.min(timeoutMs, 5000));
      for (const r of results) if (r.status !== 'ok') print(r);
      return doctorExitCode(results);
    }

    const progress = Progress.onStderr();
    try {
      const results = await runDoctor(
        config,
        {
          timeoutMs,
          network: !ctx.values.offline,
          progress: (event, label) => (event === 'start' ? progress.start(label) : progress.end(label)),
        },
        (r) => {
          progress.clear();
          print(r);
        },
      );
      const counts = { ok: 0, warn: 0, fail: 0, skip: 0 };
      for (const r of results) counts[r.status]++;
      if (!ctx.values.json) {
        ctx.out('');
        ctx.out(
          `${counts.ok} ok, ${counts.warn} warning(s), ${counts.fail} failure(s), ${counts.skip} skipped`,
        );
      }
      return doctorExitCode(results);
    } finally {
      progress.stop();
    }
  },
};
