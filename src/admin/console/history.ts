/**
 * The traffic the overview charts: byte totals (both directions, every listener) and sessions sampled at
 * each push, kept for the last hour at push resolution and for the last day at one sample a minute. The
 * browser turns successive totals into rates.
 */
export interface TrafficSample {
  /** ms since the epoch */
  t: number;
  /** Bytes from clients and to clients since the proxy started. */
  up: number;
  down: number;
  sessions: number;
}

const HOUR_MS = 3_600_000;
const DAY_SAMPLES = 1440;
const MINUTE_MS = 60_000;

export class TrafficHistory {
  readonly hour: TrafficSample[] = [];
  readonly day: TrafficSample[] = [];

  /** Record one sample; true when it also went into the day series. */
  add(sample: TrafficSample): boolean {
    this.hour.push(sample);
    while (this.hour.length > 0 && this.hour[0].t < sample.t - HOUR_MS) this.hour.shift();
    const last = this.day.at(-1);
    if (last && Math.floor(last.t / MINUTE_MS) === Math.floor(sample.t / MINUTE_MS)) return false;
    this.day.push(sample);
    if (this.day.length > DAY_SAMPLES) this.day.shift();
    return true;
  }
}

/** Sum the byte counters and active sessions of a /status document. */
export function sampleOf(status: unknown, t: number): TrafficSample {
  const s = status as {
    sessions?: { active?: number };
    listeners?: Array<{ bytesFromClient?: number; bytesToClient?: number }>;
  };
  let up = 0;
  let down = 0;
  for (const l of s.listeners ?? []) {
    up += l.bytesFromClient ?? 0;
    down += l.bytesToClient ?? 0;
  }
  return { t, up, down, sessions: s.sessions?.active ?? 0 };
}
