/** Figure rows, their ratio to the ceiling, and the markdown/JSON report. */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';

export interface Row {
  /** Figure id, e.g. "throughput". */
  figure: string;
  /** What was measured, e.g. "direct, 32 streams". */
  scenario: string;
  metric: string;
  value: number;
  unit: string;
  /** Same metric through the no-crypto ceiling relay under the same load (null when not applicable). */
  ceiling: number | null;
  /** value / ceiling. */
  ratio: number | null;
  notes?: string;
}

export function row(
  figure: string,
  scenario: string,
  metric: string,
  value: number,
  unit: string,
  ceiling: number | null,
  notes?: string,
): Row {
  const ratio = ceiling !== null && ceiling !== 0 && Number.isFinite(value) ? value / ceiling : null;
  return { figure, scenario, metric, value, unit, ceiling, ratio, notes };
}

/** Where a figure row goes: everything but the measured value and its notes. */
export interface RowSlot {
  figure: string;
  scenario: string;
  metric: string;
  unit: string;
  ceiling: number | null;
}

export function slotRow(slot: RowSlot, value: number, notes?: string): Row {
  return row(slot.figure, slot.scenario, slot.metric, value, slot.unit, slot.ceiling, notes);
}

/**
 * The rows `measure` gives, or when it throws, one row in `slot` with no value and the error's first line as
 * its note: one path that fails does not cost the figure its other rows.
 */
export async function rowsOrFailure(slot: RowSlot, measure: () => Promise<Row[]>): Promise<Row[]> {
  try {
    return await measure();
  } catch (e) {
    return [slotRow(slot, Number.NaN, `failed: ${(e as Error).message.split('\n')[0]}`)];
  }
}

function fmt(n: number | null): string {
  if (n === null || !Number.isFinite(n)) return '–';
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

export function printRows(rows: Row[]): void {
  for (const r of rows) {
    const ratio = r.ratio === null ? '' : `  (${fmt(r.ratio)}× ceiling ${fmt(r.ceiling)})`;
    console.log(
      `${r.figure.padEnd(16)} ${r.scenario.padEnd(34)} ${r.metric.padEnd(18)} ${fmt(r.value).padStart(9)} ${r.unit}${ratio}${r.notes ? `  [${r.notes}]` : ''}`,
    );
  }
}

export function markdown(rows: Row[], meta: Record<string, unknown>): string {
  const lines = [
    '# mtproxy benchmark report',
    '',
    ...Object.entries(meta).map(([k, v]) => `- ${k}: ${String(v)}`),
    '',
    '| figure | scenario | metric | value | unit | ceiling | ratio to ceiling | notes |',
    '|---|---|---|---:|---|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.figure} | ${r.scenario} | ${r.metric} | ${fmt(r.value)} | ${r.unit} | ${fmt(r.ceiling)} | ${r.ratio === null ? '–' : `${fmt(r.ratio)}×`} | ${r.notes ?? ''} |`,
    ),
    '',
  ];
  return lines.join('\n');
}

export function writeReport(
  dir: URL,
  rows: Row[],
  extra: Record<string, unknown> = {},
): { json: string; md: string } {
  mkdirSync(dir, { recursive: true });
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
    quick: process.env.BENCH_QUICK === '1',
    ...extra,
  };
  const json = new URL('report.json', dir);
  const md = new URL('report.md', dir);
  writeFileSync(json, `${JSON.stringify({ meta, rows }, null, 2)}\n`);
  writeFileSync(md, markdown(rows, meta));
  return { json: json.pathname, md: md.pathname };
}
