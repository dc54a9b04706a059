/**
 * Running the proxy under a small open-files limit: the fixtures start it in a child process (the limit is
 * per process) and talk JSON lines over stdio.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { buildFrames, type ClientSession } from '../../bench/lib/wire.ts';

/** A direct-mode config with every DC on the sink at `dcPort`, one listener on an ephemeral loopback port. */
export function lowFdConfigToml(workers: number, dcPort: string, secret: string, stateDir: string): string {
  const dcs = [1, 2, 3, 4, 5].map((id) => `${id} = ["127.0.0.1:${dcPort}"]`).join('\n');
  return `workers = ${workers}
state_dir = ${JSON.stringify(stateDir)}
[[listeners]]
name = "main"
host = "127.0.0.1"
port = 0
secret = "${secret}"
[upstream]
mode = "direct"
[upstream.dc]
${dcs}
`;
}

/** Starts `fixture` with `args` under `ulimit -n limit`; `next()` reads its next JSON line from stdout. */
export function spawnWithFdLimit(
  fixture: string,
  limit: number,
  args: (string | number)[],
): {
  child: ChildProcess;
  next: () => Promise<ReturnType<typeof JSON.parse>>;
  nextWithin: (ms: number) => Promise<ReturnType<typeof JSON.parse> | undefined>;
} {
  const quoted = args.map((a) => JSON.stringify(String(a))).join(' ');
  const child = spawn(
    'bash',
    ['-c', `ulimit -n ${limit} && exec "${process.execPath}" "${fixture}" ${quoted}`],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  // A read abandoned by nextWithin() stays pending and is handed to the next caller, so no line is lost.
  let pending: Promise<IteratorResult<string>> | null = null;
  const read = () => {
    pending ??= lines.next();
    return pending;
  };
  const next = async () => {
    const line = await read();
    pending = null;
    return JSON.parse(line.value as string);
  };
  const nextWithin = async (ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(resolve, ms, undefined);
    });
    const line = await Promise.race([read(), late]);
    clearTimeout(timer);
    if (line === undefined) return undefined;
    pending = null;
    return JSON.parse(line.value as string);
  };
  return { child, next, nextWithin };
}

/** True when one 16-byte intermediate frame through `session` comes back within 2 s (the proxy still relays). */
export function echoes(session: ClientSession): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 2000);
    session.onReceived = (n) => {
      if (n >= 16) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    session.socket.once('close', () => resolve(false));
    // One whole frame (12 payload bytes): the proxy closes sessions whose frames cannot be MTProto.
    session.send(buildFrames(12, 12));
  });
}
