import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

/** A small time-series chart (uPlot on a canvas) with a text summary for screen readers. */
export function TimeChart({ title, unit, xs, ys, summary, windowS }: { title: string; unit: string; xs: readonly number[]; ys: readonly (number | null)[]; summary: string; windowS: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const el = box.current;
    if (el === null) return;
    const width = Math.max(240, el.clientWidth);
    plot.current = new uPlot(
      {
        width,
        height: 160,
        legend: { show: false },
        cursor: { show: false },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.2 : 1] } },
        axes: [{ stroke: '#5b6470', grid: { stroke: '#e6e8eb' }, values: (_u, splits) => splits.map((t) => new Date(t * 1000).toISOString().slice(11, 19)) }, { stroke: '#5b6470', grid: { stroke: '#e6e8eb' }, size: 56 }],
        series: [{}, { label: `${title} (${unit})`, stroke: '#1f5fbf', width: 2, fill: 'rgba(31,95,191,0.08)', spanGaps: false, points: { show: true, size: 4 } }],
      },
      [[], []],
      el,
    );
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(240, el.clientWidth), height: 160 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [title, unit, windowS]);
  useEffect(() => {
    const p = plot.current;
    if (p === null) return;
    p.setData([xs.map((x) => x / 1000), ys.map((y) => y)] as uPlot.AlignedData);
    // A fixed window ending at the newest sample (UTC times, like the tables).
    const last = xs.at(-1);
    if (last !== undefined) p.setScale('x', { min: last / 1000 - windowS, max: last / 1000 });
  }, [xs, ys, windowS]);
  return (
    <figure class="chart">
      <figcaption>
        {title} <span class="unit">({unit})</span>
      </figcaption>
      <div ref={box} class="chart-canvas" role="img" aria-label={`${title}: ${summary}`} />
      <p class="chart-summary">{summary}</p>
    </figure>
  );
}
