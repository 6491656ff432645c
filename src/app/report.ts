// Run reports without dependencies: SVG line charts (panels with ticks, gridlines, axis labels, a
// legend, optional 95% bands and point markers), a trailing-mean smoother, a progress line and a
// markdown table.

export interface Series {
  name: string;
  points: Array<[number, number]>;
  /** Optional band [x, low, high] drawn behind the line (a confidence interval). */
  band?: Array<[number, number, number]>;
  /** Draw a marker on every point (sparse series such as accuracy every N steps). */
  markers?: boolean;
  dashed?: boolean;
}

export interface Panel {
  title: string;
  series: Series[];
  xLabel?: string;
  yLabel?: string;
  /** Log10 y axis (positive values only; others are dropped). */
  logY?: boolean;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const W = 460;
const H = 300;
const M = { left: 62, right: 14, top: 26, bottom: 44 };

/** About `n` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten). */
export function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * p).find((s) => s >= raw) ?? 10 * p;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Ticks of a log10 axis spanning exponents [lo, hi]: powers of ten, with 2 and 5 between when the span is short. */
function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  const mult = hi - lo < 2 ? [1, 2, 5] : [1];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++)
    for (const m of mult) {
      const v = m * 10 ** e;
      if (Math.log10(v) >= lo && Math.log10(v) <= hi) out.push(v);
    }
  return out;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(0) : String(Number(v.toPrecision(3)));
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function panel(p: Panel, x0: number): string {
  const ty = (y: number) => (p.logY ? Math.log10(y) : y);
  const ok = (y: number) => Number.isFinite(y) && (!p.logY || y > 0);
  const pts = p.series
    .flatMap((s) => [
      ...s.points.map(([x, y]) => [x, y]),
      ...(s.band ?? []).flatMap(([x, lo, hi]) => [
        [x, lo],
        [x, hi],
      ]),
    ])
    .filter(([, y]) => ok(y));
  if (!pts.length)
    return `<text x="${x0 + W / 2}" y="${H / 2}" text-anchor="middle" font-size="12">${esc(p.title)}: no data</text>`;
  // loops, not Math.min(...xs): a spread of a long run's points (one per step) overflows the stack
  const xmin = pts.reduce((a, q) => Math.min(a, q[0]), Infinity);
  const xmax = pts.reduce((a, q) => Math.max(a, q[0]), xmin + 1);
  let ymin = pts.reduce((a, q) => Math.min(a, ty(q[1])), Infinity);
  let ymax = pts.reduce((a, q) => Math.max(a, ty(q[1])), -Infinity);
  if (ymax - ymin < 1e-12) [ymin, ymax] = [ymin - 0.5, ymax + 0.5];
  const pad = (ymax - ymin) * 0.05;
  [ymin, ymax] = [ymin - pad, ymax + pad];
  const sx = (x: number) => x0 + M.left + ((x - xmin) / (xmax - xmin)) * (W - M.left - M.right);
  const sy = (y: number) => H - M.bottom - ((ty(y) - ymin) / (ymax - ymin)) * (H - M.top - M.bottom);
  const out = [
    `<text x="${x0 + (W + M.left) / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(p.title)}</text>`,
  ];
  for (const x of ticks(xmin, xmax, 6)) {
    out.push(`<line x1="${sx(x)}" y1="${M.top}" x2="${sx(x)}" y2="${H - M.bottom}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${sx(x)}" y="${H - M.bottom + 14}" text-anchor="middle" font-size="10">${fmt(x)}</text>`);
  }
  const yt = p.logY ? logTicks(ymin, ymax) : ticks(ymin, ymax, 5);
  for (const y of yt) {
    out.push(`<line x1="${x0 + M.left}" y1="${sy(y)}" x2="${x0 + W - M.right}" y2="${sy(y)}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${x0 + M.left - 4}" y="${sy(y) + 3}" text-anchor="end" font-size="10">${fmt(y)}</text>`);
  }
  out.push(
    `<rect x="${x0 + M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#777"/>`,
  );
  out.push(
    `<text x="${x0 + (W + M.left) / 2}" y="${H - 8}" text-anchor="middle" font-size="11">${esc(p.xLabel ?? 'step')}</text>`,
  );
  if (p.yLabel)
    out.push(
      `<text transform="translate(${x0 + 13},${(H - M.bottom + M.top) / 2}) rotate(-90)" text-anchor="middle" font-size="11">${esc(p.yLabel)}${p.logY ? ' (log scale)' : ''}</text>`,
    );
  // legend box first, lines over it stay visible through its translucent fill
  const legendW = 34 + 6.2 * Math.max(...p.series.map((s) => s.name.length));
  out.push(
    `<rect x="${x0 + M.left + 4}" y="${M.top + 2}" width="${legendW.toFixed(0)}" height="${13 * p.series.length + 4}" fill="white" fill-opacity="0.8" stroke="#ccc"/>`,
  );
  p.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    // on a log axis a band reaching below zero is drawn down to the panel's floor
    const floor = 10 ** ymin;
    const band = (s.band ?? [])
      .map(([x, lo, hi]): [number, number, number] => [x, p.logY ? Math.max(lo, floor) : lo, hi])
      .filter(([, lo, hi]) => ok(lo) && ok(hi));
    if (band.length > 1) {
      const poly = [
        ...band.map(([x, , hi]) => `${sx(x).toFixed(1)},${sy(hi).toFixed(1)}`),
        ...band.reverse().map(([x, lo]) => `${sx(x).toFixed(1)},${sy(lo).toFixed(1)}`),
      ];
      out.push(`<polygon points="${poly.join(' ')}" fill="${c}" fill-opacity="0.15" stroke="none"/>`);
    }
    const line = s.points.filter(([, y]) => ok(y));
    out.push(
      `<polyline fill="none" stroke="${c}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="5,3"' : ''} points="${line.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`,
    );
    if (s.markers)
      for (const [x, y] of line)
        out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${c}"/>`);
    const ly = M.top + 12 + 13 * i;
    out.push(
      `<line x1="${x0 + M.left + 8}" y1="${ly - 4}" x2="${x0 + M.left + 24}" y2="${ly - 4}" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,3"' : ''}/>`,
    );
    out.push(`<text x="${x0 + M.left + 28}" y="${ly}" font-size="10.5" fill="#222">${esc(s.name)}</text>`);
  });
  return out.join('\n');
}

/** One SVG holding the panels side by side (two per row). */
export function svgChart(panels: Panel[]): string {
  const cols = Math.min(panels.length, 2);
  const rows = Math.ceil(panels.length / cols);
  const body = panels
    .map((p, i) => `<g transform="translate(0,${Math.floor(i / cols) * H})">\n${panel(p, (i % cols) * W)}\n</g>`)
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W * cols}" height="${H * rows}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${body}\n</svg>\n`;
}

/**
 * Trailing mean over the last `window` points, using only the points that exist so far: the
 * first value is the first point itself, so a curve never starts from an invented zero and
 * climbs.
 */
export function trailingMean(points: Array<[number, number]>, window = 10): Array<[number, number]> {
  return points.map(([x], i) => {
    const from = Math.max(0, i - window + 1);
    let s = 0;
    for (let j = from; j <= i; j++) s += points[j][1];
    return [x, s / (i - from + 1)];
  });
}

export function progressLine(step: number, total: number, elapsed: number, fields: Record<string, number>): string {
  const width = 24;
  const done = Math.round((step / total) * width);
  const eta = step ? (elapsed / step) * (total - step) : 0;
  const f = Object.entries(fields)
    .map(([k, v]) => `${k} ${v.toFixed(3)}`)
    .join('  ');
  return `[${'#'.repeat(done)}${'.'.repeat(width - done)}] step ${step}/${total}  ${f}  ETA ${Math.floor(eta / 60)}m${String(Math.round(eta % 60)).padStart(2, '0')}s`;
}

/** A duration in seconds as the summaries print it: to 0.1 s under 10 s (a short run said
 *  "0 s"), to the second above. */
export function secondsText(s: number): string {
  return s < 10 ? s.toFixed(1) : s.toFixed(0);
}

export function markdownTable(head: string[], rows: Array<Array<string | number>>): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/**
 * One line of metrics.jsonl. JSON has no Infinity or NaN (`JSON.stringify` writes them as null,
 * which reads as "missing"), so a value that is not finite (a KL of a policy that put probability
 * 0 on a token, a loss that diverged) is written as the string "Infinity", "-Infinity" or "NaN",
 * which `Number()` reads back.
 */
export function jsonLine(record: object): string {
  return `${JSON.stringify(record, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v))}\n`;
}
