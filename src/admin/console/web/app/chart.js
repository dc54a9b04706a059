// uPlot in a preact component: sized to its container, data replaced in place.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { bytes, html } from './lib.js';

const COLORS = ['#1f6feb', '#bf3989', '#1a7f37', '#bf8700'];

/**
 * `data`: [x, ...series]; `series`: labels; `time`: x is unix seconds; `bars`: draw bars; `labels`: x
 * tick names (bars over periods); `format`: y values.
 */
export function Chart({ data, series, time = true, bars = false, labels = null, format = bytes, label }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const el = box.current;
    const width = Math.max(240, el.clientWidth);
    const opts = {
      width,
      height: 220,
      scales: {
        x: time ? { time } : { time, auto: false, range: (u) => [-0.5, Math.max(1, u.data[0].length) - 0.5] },
      },
      legend: { live: true },
      series: [
        {
          value: (_u, v) =>
            v === null ? '–' : time ? new Date(v * 1000).toLocaleTimeString() : (labels?.[v] ?? v),
        },
        ...series.map((name, i) => ({
          label: name,
          stroke: COLORS[i % COLORS.length],
          fill: bars ? `${COLORS[i % COLORS.length]}99` : `${COLORS[i % COLORS.length]}22`,
          width: bars ? 1 : 2,
          value: (_u, v) => (v === null ? '–' : format(v)),
          ...(bars
            ? {
                paths: uPlot.paths.bars({
                  size: [0.6, 80],
                  align: series.length === 1 ? 0 : i === 0 ? -1 : 1,
                }),
              }
            : {}),
        })),
      ],
      axes: [
        time ? {} : { values: (_u, splits) => splits.map((v) => labels?.[v] ?? '') },
        { values: (_u, splits) => splits.map((v) => format(v)), size: 70 },
      ],
    };
    plot.current = new uPlot(opts, data, el);
    const resize = new ResizeObserver(() =>
      plot.current?.setSize({ width: Math.max(240, el.clientWidth), height: 220 }),
    );
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [series.join(), time, bars]);
  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);
  return html`<div class="chart" ref=${box} role="img" aria-label=${label}></div>`;
}
