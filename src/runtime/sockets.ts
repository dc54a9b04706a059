/**
 * Socket helpers shared by the client session and the upstreams.
 */
import { isIPv4, type Socket } from 'node:net';

/** How long a closed connection may take to flush its last bytes to the peer. */
export const FLUSH_BEFORE_CLOSE_MS = 5000;

/** For timers and shared listeners: no closure per socket. */
export function destroySocket(socket: Socket): void {
  socket.destroy();
}

/**
 * Close `socket`, letting what is still buffered go out first when there is any. An absolute bound: a peer that
 * keeps sending (or stops reading) must not keep the socket open, as inactivity timers would let it.
 */
export function closeAfterFlush(socket: Socket): void {
  if (!socket.destroyed && socket.writableLength > 0) {
    socket.end();
    setTimeout(destroySocket, FLUSH_BEFORE_CLOSE_MS, socket).unref();
  } else {
    socket.destroy();
  }
}

/** `::ffff:a.b.c.d` (a v4-mapped peer of a dual-stack socket) -> `a.b.c.d`; anything else unchanged. */
export function unmapIpv4(ip: string): string {
  return ip.length > 7 && ip.slice(0, 7).toLowerCase() === '::ffff:' && isIPv4(ip.slice(7))
    ? ip.slice(7)
    : ip;
}
