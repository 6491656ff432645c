// Means with 95% confidence intervals from the t-distribution (two-sided), for results over seeds,
// and paired differences over the same seeds. A value that is not finite (a run that diverged) is
// never dropped silently: it is counted, and every formatted figure says how many there were.

// t_{0.975, df} for df = 1..30; beyond 30 the normal quantile is within 2%.
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export function tQuantile975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`tQuantile975: df must be an integer >= 1, got ${df}`);
  return df <= 30 ? T975[df - 1] : 1.96 + 2.4 / df;
}

export interface MeanCi {
  mean: number;
  /** Half-width of the 95% interval (NaN for fewer than 2 finite values). */
  half: number;
  /** Finite values the mean is over. */
  n: number;
  /** Values that were not finite (diverged runs): left out of the mean, counted here. */
  diverged: number;
}

export function meanCi(xs: number[]): MeanCi {
  const v = xs.filter(Number.isFinite);
  const n = v.length;
  const diverged = xs.length - n;
  const mean = v.reduce((a, b) => a + b, 0) / Math.max(n, 1);
  if (n < 2) return { mean: n ? mean : NaN, half: NaN, n, diverged };
  const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  return { mean, half: (tQuantile975(n - 1) * sd) / Math.sqrt(n), n, diverged };
}

/** Mean and interval of b[i] - a[i] over the pairs (the same seed in both), non-finite pairs counted. */
export function pairedDiffCi(a: number[], b: number[]): MeanCi {
  if (a.length !== b.length)
    throw new RangeError(`pairedDiffCi: the two sides must pair up, got ${a.length} and ${b.length} values`);
  return meanCi(a.map((x, i) => b[i] - x));
}

/**
 * `mean ± half`, in exponent notation when the mean is too small for `digits` decimals; diverged
 * runs are named after it. `n: true` appends the number of values.
 */
export function fmtCi(c: MeanCi, digits = 3, o: { n?: boolean } = {}): string {
  const tail = `${o.n ? ` (n=${c.n})` : ''}${c.diverged ? ` [${c.diverged} diverged]` : ''}`;
  if (!Number.isFinite(c.mean)) return `n/a${tail}`;
  const small = c.mean !== 0 && Math.abs(c.mean) < 10 ** -digits;
  const f = (x: number) => (small ? x.toExponential(1) : x.toFixed(digits));
  return `${Number.isFinite(c.half) ? `${f(c.mean)} ± ${f(c.half)}` : f(c.mean)}${tail}`;
}

/** Per-x mean and 95% band across runs' curves (each an array of [x, y] with the same xs). */
export function curveCi(curves: Array<Array<[number, number]>>): {
  mean: Array<[number, number]>;
  band: Array<[number, number, number]>;
} {
  const xs = [...new Set(curves.flatMap((c) => c.map(([x]) => x)))].sort((a, b) => a - b);
  const mean: Array<[number, number]> = [];
  const band: Array<[number, number, number]> = [];
  for (const x of xs) {
    const c = meanCi(curves.map((cv) => cv.find(([cx]) => cx === x)?.[1] ?? NaN));
    mean.push([x, c.mean]);
    if (Number.isFinite(c.half)) band.push([x, c.mean - c.half, c.mean + c.half]);
  }
  return { mean, band };
}
