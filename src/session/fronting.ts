/**
 * Domain-fronting hook (placeholder with the agreed signature; the real implementation replaces this
 * file). Until then a fronting candidate is simply closed.
 */
import type net from 'node:net';
import type { ListenerConfig } from '../config/types.ts';
import type { SessionEnv } from './types.ts';

export function frontConnection(
  socket: net.Socket,
  _alreadyRead: Buffer,
  listener: ListenerConfig,
  _sni: string | null,
  env: SessionEnv,
): void {
  env.stats.listener(listener.name).fronted++;
  socket.destroy();
}
