/** The CLI run in this test's process (no child): its exit code and the lines it printed. */
import { main } from '../../src/cli/cli.ts';

export interface CliRun {
  code: number;
  out: string[];
  err: string[];
}

/** Runs `main(args)` in `cwd`; the environment is only `env` (empty by default), so MTP_* of the shell stay out. */
export async function runCli(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { cwd, env, out: (line) => out.push(line), err: (line) => err.push(line) });
  return { code, out, err };
}
