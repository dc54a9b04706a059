/** Spawning the CLI as a separate process, for the command-line tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
export const SECRET = 'd0d6e111bada5511fcce9584deadbeef';

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of Object.keys(env)) if (k.startsWith('MTP_') && !(k in extra)) delete env[k];
  return env;
}

export function start(args: string[], cwd: string, env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [MAIN, ...args], {
    cwd,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export async function run(args: string[], cwd: string, env: Record<string, string> = {}): Promise<Result> {
  const child = start(args, cwd, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/** Collects output until `pattern` shows up on stdout. */
export function waitForOutput(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const onExit = (code: number) => reject(new Error(`exited with ${code}: ${stderr}`));
    child.stderr!.on('data', (d) => (stderr += d));
    child.stdout!.on('data', (d) => {
      stdout += d;
      if (pattern.test(stdout)) {
        child.off('exit', onExit);
        resolve(stdout);
      }
    });
    child.once('exit', onExit);
  });
}

export function linkSecrets(stdout: string): string[] {
  return [...stdout.matchAll(/tg:\/\/proxy\?server=[^&\s]+&port=\d+&secret=([0-9a-f]+)/g)].map((m) => m[1]!);
}
