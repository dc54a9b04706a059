/**
 * Request/response over a forked child's IPC channel. Every bench actor (proxy under test, sink, load
 * generator) is its own process so the one being measured never shares an event loop with the others.
 */
import { type ChildProcess, fork } from 'node:child_process';

export interface Request {
  id: number;
  op: string;
  [k: string]: unknown;
}

export interface Actor {
  readonly child: ChildProcess;
  call<T = Record<string, unknown>>(op: string, args?: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

/** Fork `entry` (a .ts file run by the same node binary) and wait for its `ready` message. */
export async function spawnActor(
  entry: URL,
  opts: { execArgv?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<Actor> {
  const child = fork(entry, [], {
    execArgv: opts.execArgv ?? [],
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  const pending = new Map<number, { resolve: (v: never) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let exited = false;
  child.on('message', (msg: { id?: number; ok?: boolean; error?: string; result?: unknown }) => {
    if (msg.id === undefined) return;
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result as never);
    else p.reject(new Error(msg.error ?? 'actor failed'));
  });
  child.on('exit', (code, signal) => {
    exited = true;
    for (const p of pending.values()) p.reject(new Error(`${entry.pathname} exited (${code ?? signal})`));
    pending.clear();
  });
  await new Promise<void>((resolve, reject) => {
    const onMsg = (m: { ready?: boolean }) => {
      if (m.ready) {
        child.off('message', onMsg);
        resolve();
      }
    };
    child.on('message', onMsg);
    child.once('exit', (code) => reject(new Error(`${entry.pathname} exited before ready (${code})`)));
  });
  return {
    child,
    call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
      if (exited) return Promise.reject(new Error('actor exited'));
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: never) => void, reject });
        child.send({ id, op, ...args });
      });
    },
    async stop(): Promise<void> {
      if (exited) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(timer);
    },
  };
}

export type Handler = (req: Request) => Promise<unknown> | unknown;

/** Child side: answer requests with `handlers[op]`, then announce readiness. */
export function serveActor(handlers: Record<string, Handler>): void {
  process.on('message', async (req: Request) => {
    const h = handlers[req.op];
    try {
      if (!h) throw new Error(`unknown op ${req.op}`);
      const result = await h(req);
      process.send!({ id: req.id, ok: true, result });
    } catch (e) {
      process.send!({ id: req.id, ok: false, error: (e as Error).stack ?? String(e) });
    }
  });
  process.on('disconnect', () => process.exit(0));
  // Exit normally on SIGTERM so `--cpu-prof` gets to write its profile.
  process.on('SIGTERM', () => process.exit(0));
  process.send!({ ready: true });
}
