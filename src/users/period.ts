/**
 * Quota periods. A period is a half-open interval [start, end) of local time (the proxy's time zone):
 * `daily` from midnight, `weekly` from the reset day's midnight (1 = Monday ... 7 = Sunday), `monthly` from
 * the reset day of the month (a day past the month's end means its last day), `total` forever. The key of a
 * period names it in the usage store (`total`, `2026-12-07`, `2026-12` style, the start's date).
 */
import type { QuotaPeriod } from '../config/users.ts';

/** What reads the time: tests inject their own. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface PeriodSpan {
  key: string;
  start: number;
  /** First instant of the next period (Infinity for `total`). */
  end: number;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function dayKey(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function daysInMonth(year: number, month: number): number {
  return new Date(year, month + 1, 0).getDate();
}

function monthStart(year: number, month: number, resetDay: number): Date {
  // Date normalises month overflow (month 12 = January of the next year).
  const first = new Date(year, month, 1);
  const day = Math.min(resetDay, daysInMonth(first.getFullYear(), first.getMonth()));
  return new Date(first.getFullYear(), first.getMonth(), day);
}

/** The period containing `at` (ms since the epoch). */
export function periodAt(at: number, period: QuotaPeriod, resetDay = 1): PeriodSpan {
  const d = new Date(at);
  switch (period) {
    case 'total':
      return { key: 'total', start: 0, end: Number.POSITIVE_INFINITY };
    case 'daily': {
      const start = new Date(d.getFullYear(), d.getMonth(), d.getDate());
      const end = new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1);
      return { key: dayKey(start), start: start.getTime(), end: end.getTime() };
    }
    case 'weekly': {
      // getDay(): 0 = Sunday; reset days are ISO (1 = Monday ... 7 = Sunday).
      const iso = d.getDay() === 0 ? 7 : d.getDay();
      const target = Math.min(Math.max(resetDay, 1), 7);
      const back = (iso - target + 7) % 7;
      const start = new Date(d.getFullYear(), d.getMonth(), d.getDate() - back);
      const end = new Date(start.getFullYear(), start.getMonth(), start.getDate() + 7);
      return { key: dayKey(start), start: start.getTime(), end: end.getTime() };
    }
    case 'monthly': {
      const day = Math.min(Math.max(resetDay, 1), 31);
      let start = monthStart(d.getFullYear(), d.getMonth(), day);
      if (start.getTime() > at) start = monthStart(d.getFullYear(), d.getMonth() - 1, day);
      const end = monthStart(start.getFullYear(), start.getMonth() + 1, day);
      return { key: dayKey(start), start: start.getTime(), end: end.getTime() };
    }
  }
}
