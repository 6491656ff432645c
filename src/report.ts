// Run reports: an SVG line chart (one panel per metric, one line per run), a progress bar, and
// a markdown table. No dependencies.

export interface Series {
  name: string;
  points: Array<[number, number]>;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

function panel(title: string, series: Series[], x0: number, y0: number, w: number, h: number): string {
  const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (!all.length) return '';
  const [xmin, xmax] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [ymin, ymax] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (ymin === ymax) [ymin, ymax] = [ymin - 1, ymax + 1];
  const sx = (x: number) => x0 + 50 + ((x - xmin) / Math.max(xmax - xmin, 1)) * (w - 60);
  const sy = (y: number) => y0 + h - 25 - ((y - ymin) / (ymax - ymin)) * (h - 45);
  const out = [
    `<text x="${x0 + w / 2}" y="${y0 + 14}" text-anchor="middle" font-size="13">${title}</text>`,
    `<line x1="${sx(xmin)}" y1="${sy(ymin)}" x2="${sx(xmax)}" y2="${sy(ymin)}" stroke="#888"/>`,
    `<line x1="${sx(xmin)}" y1="${sy(ymin)}" x2="${sx(xmin)}" y2="${sy(ymax)}" stroke="#888"/>`,
    `<text x="${sx(xmin) - 4}" y="${sy(ymax) + 4}" text-anchor="end" font-size="10">${ymax.toPrecision(3)}</text>`,
    `<text x="${sx(xmin) - 4}" y="${sy(ymin) + 4}" text-anchor="end" font-size="10">${ymin.toPrecision(3)}</text>`,
    `<text x="${sx(xmax)}" y="${sy(ymin) + 14}" text-anchor="end" font-size="10">step ${xmax}</text>`,
  ];
  series.forEach((s, i) => {
    const pts = s.points.filter(([, y]) => Number.isFinite(y)).map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    out.push(`<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5" points="${pts}"/>`);
    out.push(`<text x="${x0 + 60}" y="${y0 + 30 + 13 * i}" font-size="11" fill="${COLORS[i % COLORS.length]}">${s.name}</text>`);
  });
  return out.join('\n');
}

/** One SVG with a panel per metric, side by side. */
export function svgChart(panels: Array<{ title: string; series: Series[] }>): string {
  const w = 420;
  const h = 260;
  const body = panels.map((p, i) => panel(p.title, p.series, i * w, 0, w, h)).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w * panels.length}" height="${h}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${body}\n</svg>\n`;
}

/** Exponential moving average, to read a noisy reward curve. */
export function smooth(points: Array<[number, number]>, alpha = 0.2): Array<[number, number]> {
  let acc = NaN;
  return points.map(([x, y]) => [x, (acc = Number.isNaN(acc) ? y : acc + alpha * (y - acc))]);
}

export function progressLine(step: number, total: number, elapsed: number, fields: Record<string, number>): string {
  const width = 24;
  const done = Math.round((step / total) * width);
  const eta = step ? (elapsed / step) * (total - step) : 0;
  const f = Object.entries(fields).map(([k, v]) => `${k} ${v.toFixed(3)}`).join('  ');
  return `[${'#'.repeat(done)}${'.'.repeat(width - done)}] step ${step}/${total}  ${f}  ETA ${Math.floor(eta / 60)}m${String(Math.round(eta % 60)).padStart(2, '0')}s`;
}

export function markdownTable(head: string[], rows: Array<Array<string | number>>): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
