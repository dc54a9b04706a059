/**
 * Bench-only fake DC: skips the DC-leg header the proxy sends first, then either echoes every byte back
 * (latency, idle, handshake figures) or streams `downBytes` towards the client while discarding what arrives
 * (throughput). It never decrypts: the proxy's DC leg is a stream cipher, so the proxy does all its crypto
 * work whatever the bytes are, and the load generator only counts.
 */
import net from 'node:net';

export interface RawSinkOptions {
  /** Bytes to drop at the start of each connection (64 for the proxy's obfuscated2 DC header, 0 for the ceiling). */
  skip: number;
  mode: 'echo' | 'stream';
  /** 'stream' mode: bytes to send to each connection. */
  downBytes?: number;
}

export interface RawSink {
  port: number;
  bytesIn(): number;
  connections(): number;
  close(): Promise<void>;
}

const STREAM_CHUNK = Buffer.alloc(64 * 1024, 0x5a);

export function startRawSink(opts: RawSinkOptions): Promise<RawSink> {
  let bytesIn = 0;
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    connections++;
    sockets.add(socket);
    let toSkip = opts.skip;
    let started = false;
    const startStream = () => {
      if (started || opts.mode !== 'stream') return;
      started = true;
      let left = opts.downBytes ?? 0;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, STREAM_CHUNK.length);
          left -= n;
          if (!socket.write(n === STREAM_CHUNK.length ? STREAM_CHUNK : STREAM_CHUNK.subarray(0, n))) {
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
    };
    socket.on('data', (chunk: Buffer) => {
      bytesIn += chunk.length;
      if (toSkip > 0) {
        if (chunk.length <= toSkip) {
          toSkip -= chunk.length;
          return;
        }
        chunk = chunk.subarray(toSkip);
        toSkip = 0;
      }
      // The download starts with the client's first payload byte, so it is timed together with the upload.
      startStream();
      if (opts.mode === 'echo' && !socket.write(chunk)) {
        socket.pause();
        socket.once('drain', () => socket.resume());
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('error', () => {});
  return new Promise((resolve) => {
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        bytesIn: () => bytesIn,
        connections: () => connections,
        close: () => {
          for (const s of sockets) s.destroy();
          return new Promise<void>((r) => server.close(() => r()));
        },
      });
    });
  });
}
