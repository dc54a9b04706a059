/**
 * Load generator (a child process; the orchestrator runs one or two). Opens sessions through the proxy and
 * drives one scenario at a time on them; reports counts and raw latency samples, never judges them.
 */
import { serveActor } from './ipc.ts';
import { buildFrames, type ClientSession, openSession, prepareHandshakes, type Target } from './wire.ts';

let sessions: ClientSession[] = [];
let target: Target | null = null;

async function openMany(t: Target, count: number, concurrency: number): Promise<number> {
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      try {
        sessions.push(await openSession(t));
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return failed;
}

/** Send `message`, resolve when `replyLength` more bytes came back (false on timeout or close). */
function roundTrip(
  s: ClientSession,
  message: Buffer,
  replyLength: number,
  timeoutMs: number,
): Promise<boolean> {
  const goal = s.received + replyLength;
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.onReceived = null;
      s.socket.off('close', onClose);
      resolve(ok);
    };
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    s.onReceived = (total) => {
      if (total >= goal) done(true);
    };
    s.socket.once('close', onClose);
    s.send(message);
  });
}

function pingMessage(t: Target, size: number): { message: Buffer; reply: number } {
  if (t.framed) return { message: buildFrames(size, size), reply: 4 + size };
  // Direct mode: one whole frame too (the proxy closes a session whose frames cannot be MTProto); the DC side
  // echoes the bytes as they are.
  return { message: buildFrames(size - 4, size - 4), reply: size };
}

serveActor({
  async open(req) {
    target = req.target as Target;
    const before = sessions.length;
    const failed = await openMany(target, req.count as number, (req.concurrency as number) ?? 64);
    return { opened: sessions.length - before, failed };
  },

  /**
   * Every session uploads `upBytes` and waits for `downBytes` more received bytes (what the sink streams
   * back). `echo`: the upstream echoes (middle mode), so the download is the upload rounded up to whole blocks.
   */
  async throughput(req) {
    const chunkSize = 64 * 1024;
    // Whole frames in every mode: the proxy checks a direct client's frame boundaries too.
    const block = buildFrames(chunkSize - 4 * 4, 16 * 1024 - 4);
    const upBytes = Math.ceil((req.upBytes as number) / chunkSize) * chunkSize;
    const downBytes = req.echo ? upBytes : (req.downBytes as number);
    const base = sessions.map((s) => s.received);
    const startedAt = performance.now();
    let sent = 0;
    await Promise.all(
      sessions.map(
        (s, i) =>
          new Promise<void>((resolve) => {
            const goal = base[i] + downBytes;
            let left = upBytes;
            let upDone = upBytes === 0;
            let downDone = s.received >= goal;
            const check = () => {
              if (upDone && downDone) {
                s.onReceived = null;
                s.socket.off('close', finish);
                resolve();
              }
            };
            const finish = () => {
              upDone = downDone = true;
              check();
            };
            s.onReceived = (total) => {
              if (total >= goal) {
                downDone = true;
                check();
              }
            };
            s.socket.once('close', finish);
            const pump = () => {
              while (left > 0) {
                left -= block.length;
                sent += block.length;
                if (!s.send(block)) {
                  s.socket.once('drain', pump);
                  return;
                }
              }
              upDone = true;
              check();
            };
            pump();
          }),
      ),
    );
    const received = sessions.reduce((n, s, i) => n + s.received - base[i], 0);
    return { elapsedMs: performance.now() - startedAt, sent, received };
  },

  /** Closed-loop ping-pong on every session for `durationMs`; returns every round-trip time in µs. */
  async pingpong(req) {
    const t = target!;
    const { message, reply } = pingMessage(t, req.size as number);
    const until = performance.now() + (req.durationMs as number);
    const samples: number[] = [];
    let failures = 0;
    await Promise.all(
      sessions.map(async (s) => {
        while (performance.now() < until) {
          const t0 = performance.now();
          if (!(await roundTrip(s, message, reply, 10_000))) {
            failures++;
            return;
          }
          samples.push((performance.now() - t0) * 1000);
        }
      }),
    );
    return { samples: Float64Array.from(samples), failures };
  },

  /**
   * Every session sends `packetSize`-byte packets as fast as its socket takes them for `durationMs` (the
   * upstream echoes, so the download is saturated as well); returns bytes sent and received in the window.
   */
  async saturate(req) {
    const size = req.packetSize as number;
    const packet = buildFrames(size - 4, size - 4);
    const until = performance.now() + (req.durationMs as number);
    const base = sessions.map((s) => s.received);
    let sent = 0;
    await Promise.all(
      sessions.map(
        (s) =>
          new Promise<void>((resolve) => {
            const stop = setTimeout(resolve, Math.max(0, until - performance.now()));
            s.socket.once('close', () => {
              clearTimeout(stop);
              resolve();
            });
            const pump = () => {
              while (performance.now() < until && !s.socket.destroyed) {
                sent += packet.length;
                if (!s.send(packet)) {
                  s.socket.once('drain', pump);
                  return;
                }
              }
            };
            pump();
          }),
      ),
    );
    const received = sessions.reduce((n, s, i) => n + s.received - base[i], 0);
    return { sent, received, elapsedMs: req.durationMs as number };
  },

  /**
   * Paced small round trips: every session sends one `size`-byte message every `intervalMs` (or at once when
   * the answer came later than that) for `durationMs`; returns every round-trip time in µs.
   */
  async tick(req) {
    const t = target!;
    const { message, reply } = pingMessage(t, req.size as number);
    const interval = req.intervalMs as number;
    const until = performance.now() + (req.durationMs as number);
    const samples: number[] = [];
    let failures = 0;
    await Promise.all(
      sessions.map(async (s, i) => {
        // Spread the sessions over the interval so they do not all send in the same turn.
        await new Promise((r) => setTimeout(r, (interval * i) / sessions.length));
        while (performance.now() < until) {
          const t0 = performance.now();
          if (!(await roundTrip(s, message, reply, 10_000))) {
            failures++;
            return;
          }
          const rtt = performance.now() - t0;
          samples.push(rtt * 1000);
          if (rtt < interval) await new Promise((r) => setTimeout(r, interval - rtt));
        }
      }),
    );
    return { samples: Float64Array.from(samples), failures };
  },

  /** One round trip on every open session: how many still answer. */
  async check(req) {
    const t = target;
    if (!t) return { answered: 0, total: 0 };
    const { message, reply } = pingMessage(t, (req.size as number) ?? 64);
    let answered = 0;
    const batch = 500;
    for (let i = 0; i < sessions.length; i += batch) {
      const results = await Promise.all(
        sessions.slice(i, i + batch).map((s) => roundTrip(s, message, reply, 15_000)),
      );
      answered += results.filter(Boolean).length;
    }
    return { answered, total: sessions.length };
  },

  /** Fresh sessions as fast as possible: connect, handshake, one small round trip, close. */
  async churn(req) {
    const t = req.target as Target;
    let until = 0;
    const { message, reply } = pingMessage(t, 64);
    // Handshakes for the whole window are made before the clock starts: the generator must not be the bottleneck.
    prepareHandshakes(t, (req.prepare as number) ?? 0);
    until = performance.now() + (req.durationMs as number);
    let completed = 0;
    let failures = 0;
    // `count`: stop after that many sessions (a burst) rather than at the end of the window.
    const count = (req.count as number | undefined) ?? Number.POSITIVE_INFINITY;
    let started = 0;
    const loop = async () => {
      while (performance.now() < until && started++ < count) {
        try {
          // Header and first request in one write, as a real client's first packet.
          const s = await openSession(t, true);
          if (await roundTrip(s, message, reply, 5_000)) completed++;
          else failures++;
          s.socket.destroy();
        } catch {
          failures++;
        }
      }
    };
    const startedAt = performance.now();
    await Promise.all(Array.from({ length: req.concurrency as number }, loop));
    // Leftovers would hold memory (each has two cipher contexts) and belong to this target only.
    prepareHandshakes(t, 0);
    return { completed, failures, elapsedMs: performance.now() - startedAt };
  },

  closeAll() {
    for (const s of sessions) s.socket.destroy();
    sessions = [];
    return {};
  },
});
