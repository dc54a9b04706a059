/**
 * Running out of file descriptors is rarely reported where it matters. libuv absorbs EMFILE on accept() itself
 * (it frees a reserved descriptor, accepts and closes the waiting connections, and tells Node nothing), so the
 * first sign the proxy gets is usually an outgoing connect to Telegram failing with EMFILE. Whoever sees such an
 * error reports it here; every running listener set of this thread (the Proxy) logs it and slows accepting.
 */

/**
 * The one list of "out of descriptors" codes, for the accept path, outgoing connects and the worker's last-resort
 * handler alike: the process or system descriptor table is full (EMFILE, ENFILE), or the kernel has no memory
 * left for another socket (ENOBUFS, ENOMEM), which calls for the same answer: slow down accepting.
 */
const FD_EXHAUSTION_CODES = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

export type FdExhaustionListener = (code: string, where: string) => void;

const listeners = new Set<FdExhaustionListener>();

export function isFdExhaustion(code: string | undefined): code is string {
  return code !== undefined && FD_EXHAUSTION_CODES.has(code);
}

/** Subscribe; returns the unsubscribe function. */
export function onFdExhaustion(listener: FdExhaustionListener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** `where`: what failed, for the log ("dc-connect", "middle-connect", ...). */
export function reportFdExhaustion(code: string, where: string): void {
  for (const listener of listeners) listener(code, where);
}
