/**
 * Which process listens on a TCP port (Linux, best effort: /proc/net/tcp{,6} give the socket's inode,
 * /proc/PID/fd the process holding it), so a port conflict can name the other mtproxy. Elsewhere, or when
 * /proc hides other processes, the answer is null.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';

const TCP_LISTEN = '0A';

function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== TCP_LISTEN || f[9] === '0') continue;
      if (Number.parseInt(f[1].split(':')[1] ?? '', 16) === port) inodes.add(f[9]);
    }
  }
  return inodes;
}

/** The pid of a process with a socket listening on `port`, or null when none can be seen. */
export function listeningPid(port: number): number | null {
  if (process.platform !== 'linux' || port <= 0) return null;
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return null;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return null;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1])) return Number(pid);
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return null;
}

/** Whether `pid` runs this proxy (`bin/mtproxy.js`, or `src/cli/main.ts` as `npm start` runs it). */
export function isMtproxyProcess(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.some((a) => /(^|\/)(bin\/mtproxy(\.js)?|src\/cli\/main\.ts)$/.test(a));
  } catch {
    return false;
  }
}

/** The pid of another mtproxy listening on `port`, or null (none, not Linux, or another program). */
export function otherMtproxyOn(port: number): number | null {
  const pid = listeningPid(port);
  return pid !== null && pid !== process.pid && isMtproxyProcess(pid) ? pid : null;
}

/**
 * A claim on `host:port` for this process's lifetime: a Linux abstract Unix socket named after the address,
 * which only one process can bind and the kernel frees when the process ends (no file to go stale). Closes
 * the window between checking a port and the worker threads binding it, when two instances start at once.
 * Resolves to the release function, or null when another process holds the claim; elsewhere than Linux
 * there is nothing to claim and it resolves to a no-op.
 */
export function claimPort(host: string, port: number): Promise<(() => void) | null> {
  if (process.platform !== 'linux') return Promise.resolve(() => {});
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'EADDRINUSE' ? null : () => {}),
    );
    server.listen({ path: `\0mtproxy-port:${host}:${port}` }, () => {
      server.unref();
      resolve(() => server.close());
    });
  });
}
