/**
 * The machine's ceiling: a plain TCP relay shaped like the proxy's session relay ('data' handler, write,
 * pause on a full socket, resume on 'drain', destroy both ends together) but with no handshake and no crypto.
 * Every bench figure is printed with its ratio to this relay's figure under the same load.
 *
 * Run alone: `node bench/ceiling-relay.ts <listenPort> <targetHost> <targetPort>`.
 */
import net from 'node:net';

export interface CeilingRelay {
  port: number;
  close(): Promise<void>;
}

function relayPair(client: net.Socket, upstream: net.Socket): void {
  client.on('data', (chunk: Buffer) => {
    if (!upstream.write(chunk)) client.pause();
  });
  upstream.on('data', (chunk: Buffer) => {
    if (!client.write(chunk)) upstream.pause();
  });
  upstream.on('drain', () => client.resume());
  client.on('drain', () => upstream.resume());
  const teardown = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('close', teardown);
  upstream.on('close', teardown);
  client.on('error', teardown);
  upstream.on('error', teardown);
}

export function startCeilingRelay(opts: {
  port?: number;
  host?: string;
  targetHost: string;
  targetPort: number;
}): Promise<CeilingRelay> {
  const server = net.createServer({ noDelay: true }, (client) => {
    client.pause();
    const upstream = net.connect({ host: opts.targetHost, port: opts.targetPort, noDelay: true }, () => {
      client.resume();
    });
    relayPair(client, upstream);
  });
  // Out of descriptors: keep running and try again on the next connection, like the proxy must.
  server.on('error', () => {});
  return new Promise((resolve) => {
    server.listen({ port: opts.port ?? 0, host: opts.host ?? '127.0.0.1', backlog: 4096 }, () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}

if (import.meta.main) {
  const [port, targetHost, targetPort] = process.argv.slice(2);
  const relay = await startCeilingRelay({ port: Number(port), targetHost, targetPort: Number(targetPort) });
  console.log(`ceiling relay on 127.0.0.1:${relay.port} -> ${targetHost}:${targetPort}`);
}
