/**
 * A small SVG line chart for benchmark reports (no dependency): stacked panels sharing one time axis,
 * each with its own y scale, series as polylines, and optional vertical markers (e.g. switchovers).
 */

export interface Series {
  label: string;
  color: string;
  /** [x, y] points; y null leaves a gap (no sample). */
  points: Array<[number, number | null]>;
  dashed?: boolean;
}

export interface Panel {
  title: string;
  unit: string;
  series: Series[];
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  panels: Panel[];
  markers?: Array<{ x: number; label: string }>;
  /** What the markers are, for the legend (e.g. "switchover"). */
  markerLegend?: string;
  width?: number;
  panelHeight?: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A "nice" step (1, 2 or 5 × 10^k) giving about `n` ticks over `span`. */
function niceStep(span: number, n: number): number {
  if (!(span > 0)) return 1;
  const raw = span / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

const fmt = (v: number) => (Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1));

export function svgPlot(o: PlotOptions): string {
  const width = o.width ?? 900;
  const ph = o.panelHeight ?? 220;
  const left = 70;
  const right = 170;
  const top = 40;
  const gap = 50;
  const plotW = width - left - right;
  const xs = o.panels.flatMap((p) => p.series.flatMap((s) => s.points.map(([x]) => x)));
  const xMin = xs.length ? Math.min(...xs) : 0;
  const xMax = xs.length ? Math.max(...xs, xMin + 1) : 1;
  const sx = (x: number) => left + ((x - xMin) / (xMax - xMin)) * plotW;
  const height = top + o.panels.length * (ph + gap) + 10;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(o.title)}</text>`);
  o.panels.forEach((panel, i) => {
    const y0 = top + i * (ph + gap);
    const ys = panel.series.flatMap((s) => s.points.map(([, y]) => y).filter((y): y is number => y !== null));
    const yMaxRaw = ys.length ? Math.max(...ys) : 1;
    const step = niceStep(yMaxRaw, 5);
    const yMax = Math.max(step, Math.ceil(yMaxRaw / step) * step);
    const sy = (y: number) => y0 + ph - (y / yMax) * ph;
    out.push(`<text x="${left}" y="${y0 - 8}" font-weight="bold">${esc(panel.title)} (${esc(panel.unit)})</text>`);
    out.push(`<rect x="${left}" y="${y0}" width="${plotW}" height="${ph}" fill="none" stroke="#999"/>`);
    for (let v = 0; v <= yMax + 1e-9; v += step) {
      const y = sy(v);
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#eee"/>`);
      out.push(`<text x="${left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="#444">${fmt(v)}</text>`);
    }
    const xStep = niceStep(xMax - xMin, 8);
    for (let v = Math.ceil(xMin / xStep) * xStep; v <= xMax + 1e-9; v += xStep) {
      const x = sx(v);
      out.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${y0}" y2="${y0 + ph}" stroke="#f2f2f2"/>`);
      out.push(`<text x="${x.toFixed(1)}" y="${y0 + ph + 15}" text-anchor="middle" fill="#444">${fmt(v)}</text>`);
    }
    for (const m of o.markers ?? []) {
      const x = sx(m.x);
      out.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${y0}" y2="${y0 + ph}" stroke="#c33" stroke-dasharray="3,3"><title>${esc(m.label)}</title></line>`);
    }
    panel.series.forEach((s, k) => {
      // One polyline per run of samples without a gap.
      let run: string[] = [];
      const flush = () => {
        if (run.length) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="6,3"' : ''} points="${run.join(' ')}"/>`);
        run = [];
      };
      for (const [x, y] of s.points) {
        if (y === null) flush();
        else run.push(`${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
      }
      flush();
      const ly = y0 + 14 + k * 18;
      out.push(`<line x1="${left + plotW + 12}" x2="${left + plotW + 36}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6,3"' : ''}/>`);
      out.push(`<text x="${left + plotW + 42}" y="${ly}">${esc(s.label)}</text>`);
    });
    if (i === o.panels.length - 1) out.push(`<text x="${left + plotW / 2}" y="${y0 + ph + 32}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  });
  if (o.markers?.length && o.markerLegend) {
    out.push(`<text x="${left + plotW + 12}" y="${height - 14}" fill="#c33">- - ${esc(o.markerLegend)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n');
}
