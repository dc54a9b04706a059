/** Child process holding the fake upstream (a raw sink for the ceiling and direct mode, a fake middle proxy). */
import { serveActor } from './ipc.ts';
import { type RawSink, type RawSinkOptions, startRawSink } from './raw-sink.ts';

let sink: RawSink | null = null;

serveActor({
  async start(req) {
    if (sink) await sink.close();
    sink = await startRawSink(req.options as RawSinkOptions);
    return { port: sink.port };
  },
  stats() {
    return { bytesIn: sink?.bytesIn() ?? 0, connections: sink?.connections() ?? 0 };
  },
  async stop() {
    await sink?.close();
    sink = null;
    return {};
  },
});
