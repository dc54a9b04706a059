/**
 * `mtproxy firewall print|apply|remove`: the per-source SYN limit (excess SYNs get a TCP reset) and the
 * optional MSS clamp for every listener port, as one nftables table of its own (`[firewall]` in the config).
 * `apply` and `remove` need root (CAP_NET_ADMIN) and the `nft` tool.
 */
import { spawn } from 'node:child_process';
import {
  firewallTargets,
  formatSynRate,
  renderApplyScript,
  renderRemoveScript,
} from '../../firewall/nftables.ts';
import type { CliCommand, CliContext } from '../command.ts';

const ACTIONS = ['print', 'apply', 'remove'] as const;

interface NftResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when nft could not be started at all (ENOENT: not installed). */
  spawnError?: string;
}

/** The nft binary: MTP_NFT (tests, unusual installs) or `nft` from PATH. */
function nftBinary(ctx: CliContext): string {
  return ctx.env.MTP_NFT || 'nft';
}

function runNft(bin: string, args: string[], input: string | null): Promise<NftResult> {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.once('error', (e: NodeJS.ErrnoException) =>
      resolve({ code: null, stdout, stderr, spawnError: e.code ?? e.message }),
    );
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

function nftFailure(ctx: CliContext, bin: string, r: NftResult): number {
  if (r.spawnError === 'ENOENT') {
    ctx.err(`mtproxy firewall: ${bin} not found; install nftables (apt-get install nftables)`);
  } else if (r.spawnError) {
    ctx.err(`mtproxy firewall: cannot run ${bin} (${r.spawnError})`);
  } else {
    const first = r.stderr.trim().split('\n')[0] ?? '';
    const hint = /not permitted|permission denied/i.test(r.stderr) ? ' (run as root)' : '';
    ctx.err(`mtproxy firewall: nft failed${hint}: ${first || `exit code ${r.code}`}`);
  }
  return 1;
}

export const command: CliCommand = {
  name: 'firewall',
  summary: 'Print, apply or remove the nftables SYN limit (and MSS clamp) for the listener ports',
  details: 'The rules come from [firewall]; apply and remove need root and nft.',
  usage: 'firewall print|apply|remove [--config FILE]',
  async run(ctx) {
    const action = ctx.positionals[0];
    if (!action || !(ACTIONS as readonly string[]).includes(action) || ctx.positionals.length > 1) {
      ctx.err('mtproxy firewall: expected one of print, apply, remove (see mtproxy firewall --help)');
      return 2;
    }
    const { config } = await ctx.loadConfig();
    const fw = config.firewall;
    const bin = nftBinary(ctx);

    if (action === 'remove') {
      const listed = await runNft(bin, ['list', 'table', 'inet', fw.table], null);
      if (listed.spawnError) return nftFailure(ctx, bin, listed);
      if (listed.code !== 0) {
        if (/no such file|does not exist/i.test(listed.stderr)) {
          ctx.out(`table inet ${fw.table} is not loaded; nothing to remove`);
          return 0;
        }
        return nftFailure(ctx, bin, listed);
      }
      const r = await runNft(bin, ['-f', '-'], renderRemoveScript(fw));
      if (r.code !== 0) return nftFailure(ctx, bin, r);
      ctx.out(`removed table inet ${fw.table}`);
      return 0;
    }

    const targets = firewallTargets(config.listeners);
    if (targets.length === 0) {
      ctx.err('mtproxy firewall: no listener has a fixed port (port 0 is picked at start); nothing to limit');
      return 1;
    }
    const script = renderApplyScript(fw, targets);
    if (action === 'print') {
      for (const line of script.trimEnd().split('\n')) ctx.out(line);
      return 0;
    }
    const r = await runNft(bin, ['-f', '-'], script);
    if (r.code !== 0) return nftFailure(ctx, bin, r);
    const ports = targets.map((t) => t.port).join(', ');
    const mss = fw.mssClamp > 0 ? `, MSS clamped to ${fw.mssClamp}` : '';
    ctx.out(
      `loaded table inet ${fw.table}: port(s) ${ports}, ${formatSynRate(fw.synRate)} per client address, burst ${fw.synBurst}${mss}`,
    );
    return 0;
  },
};
