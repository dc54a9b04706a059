/**
 * Start-up failures the operator fixes in the config or the environment (a busy port, a state folder that
 * cannot be created, another instance): the CLI prints their message as one line, without a stack. Their
 * codes survive the trip from a worker, so they are recognised by code.
 */
import net from 'node:net';
import { MtpError } from './errors.ts';
import { formatHostPort } from './host-port.ts';
import { otherMtproxyOn } from './port-owner.ts';

export const STARTUP_ERROR_CODES = new Set([
  'MTP_ERR_CONFIG',
  'MTP_ERR_LISTEN',
  'MTP_ERR_STATE_DIR',
  'EADDRINUSE',
  'EACCES',
  'EADDRNOTAVAIL',
  'ELISTEN',
]);

/** One line naming the setting, e.g. `metrics.listen: 127.0.0.1:9100 is already in use`. */
export class StartupError extends MtpError {
  constructor(code: string, message: string) {
    super('server', code, message);
    this.name = 'StartupError';
  }
}

/** Why binding `host:port` failed, in words (no stack, no errno noise). */
export function describeBindError(err: NodeJS.ErrnoException, host: string, port: number): string {
  const where = formatHostPort({ host, port });
  switch (err.code) {
    case 'EADDRINUSE': {
      const other = otherMtproxyOn(port);
      return other === null
        ? `${where} is already in use`
        : `${where} is already in use by another mtproxy (pid ${other})`;
    }
    case 'EACCES':
      return `no permission to listen on ${where} (ports below 1024 need privileges)`;
    case 'EADDRNOTAVAIL':
      return `${host} is not an address of this machine`;
    default:
      return `cannot listen on ${where} (${err.code ?? err.message})`;
  }
}

/**
 * Worker threads bind with SO_REUSEPORT, which the kernel also grants to a second instance of the proxy (same
 * user), and would then split the clients between the two. Binding once without it first fails while anyone
 * else holds the port, reuse or not. Resolves to null when the port is free, else the bind error.
 */
export function probeExclusive(
  host: string,
  port: number,
  ipv6Only: boolean,
): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ host, port, ipv6Only, exclusive: true }, () => server.close(() => resolve(null)));
  });
}
