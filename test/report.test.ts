// Reporting helpers against hand-computed values: the t-interval, the trailing mean (no invented
// climb from step 1), round axis ticks, and the EXPERIMENTS.md section replacement.
import { describe, expect, it } from 'vitest';
import { replaceSection } from '../src/app/experiments/index.js';
import { fmtCi, meanCi, pairedDiffCi, tQuantile975 } from '../src/app/stats.js';
import { jsonLine, svgChart, ticks, trailingMean } from '../src/app/report.js';

describe('report helpers', () => {
  it('meanCi gives the t-distribution 95% interval', () => {
    // 1..5: mean 3, sample sd sqrt(2.5), t(0.975, 4) = 2.776
    const c = meanCi([1, 2, 3, 4, 5]);
    expect(c.mean).toBe(3);
    expect(c.half).toBeCloseTo((2.776 * Math.sqrt(2.5)) / Math.sqrt(5), 10);
    expect(tQuantile975(1)).toBe(12.706);
    expect(Number.isNaN(meanCi([7]).half)).toBe(true);
    expect(fmtCi(meanCi([1e-6, 3e-6]))).toMatch(/^2\.0e-6 ± /);
    expect(() => tQuantile975(0)).toThrow(RangeError);
  });

  it('a diverged run is counted and named, never dropped silently; n is shown on request', () => {
    const c = meanCi([1, 2, Number.NaN, 3, Number.POSITIVE_INFINITY]);
    expect(c).toMatchObject({ mean: 2, n: 3, diverged: 2 });
    expect(fmtCi(c, 1)).toBe(`2.0 ± ${c.half.toFixed(1)} [2 diverged]`);
    expect(fmtCi(c, 1, { n: true })).toBe(`2.0 ± ${c.half.toFixed(1)} (n=3) [2 diverged]`);
    expect(fmtCi(meanCi([Number.NaN]), 2, { n: true })).toBe('n/a (n=0) [1 diverged]');
  });

  it('pairedDiffCi is the interval of the per-seed differences', () => {
    // b - a = 1, 1, 1.5, 0.5: mean 1, sd sqrt(1/6)
    const d = pairedDiffCi([1, 2, 3, 4], [2, 3, 4.5, 4.5]);
    expect(d.mean).toBeCloseTo(1, 12);
    expect(d.half).toBeCloseTo((3.182 * Math.sqrt(1 / 6)) / 2, 10);
    expect(() => pairedDiffCi([1], [1, 2])).toThrow(RangeError);
  });

  it('trailingMean starts at the first point and averages only points that exist', () => {
    const got = trailingMean(
      [
        [1, 0.5],
        [2, 0.7],
        [3, 0.9],
        [4, 0.1],
      ],
      3,
    );
    const want = [
      [1, 0.5],
      [2, 0.6],
      [3, 0.7],
      [4, (0.7 + 0.9 + 0.1) / 3],
    ];
    got.forEach(([x, y], i) => {
      expect(x).toBe(want[i][0]);
      expect(y).toBeCloseTo(want[i][1], 12);
    });
  });

  it('ticks are round and cover the range', () => {
    expect(ticks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(ticks(3, 47, 5)).toEqual([10, 20, 30, 40]);
  });

  it('svgChart draws ticks, gridlines, labels, legend and bands', () => {
    const svg = svgChart([
      {
        title: 'reward',
        yLabel: 'mean reward',
        series: [
          {
            name: 'gvpo',
            points: [
              [1, 0.2],
              [2, 0.4],
            ],
            band: [
              [1, 0.1, 0.3],
              [2, 0.3, 0.5],
            ],
          },
        ],
      },
    ]);
    expect(svg).toContain('>reward<');
    expect(svg).toContain('mean reward');
    expect(svg).toContain('>gvpo<');
    expect(svg).toContain('<polygon');
    expect((svg.match(/stroke="#e4e4e4"/g) ?? []).length).toBeGreaterThan(4);
  });

  it("svgChart takes a long run's points (one per step) without overflowing the call stack", () => {
    // Math.min(...points) threw "Maximum call stack size exceeded" at the end of a 200,000-step run
    const points = Array.from({ length: 200_000 }, (_, i) => [i + 1, Math.sin(i / 1000)] as [number, number]);
    const svg = svgChart([{ title: 'reward', series: [{ name: 'gvpo', points }] }]);
    expect(svg).toContain('>reward<');
    expect(svg).toContain('>2e+5<'); // the x axis reaches the last step
  });

  it('replaceSection replaces only the text between its markers', () => {
    const doc = replaceSection('# E\n\nintro\n', 'text', '2. Text', 'first');
    expect(doc).toContain('## 2. Text\n\n<!-- begin experiment text -->\nfirst\n<!-- end experiment text -->');
    const withNote = `${doc}\n**Conclusion.** by hand\n`;
    const again = replaceSection(withNote, 'text', '2. Text', 'second');
    expect(again).toContain('second');
    expect(again).not.toContain('first');
    expect(again).toContain('**Conclusion.** by hand');
    expect(again.match(/## 2\. Text/g)).toHaveLength(1);
  });

  it('jsonLine keeps what JSON cannot hold: Infinity, -Infinity and NaN as strings, not null', () => {
    const line = jsonLine({ step: 3, klInitial: Infinity, loss: NaN, terms: { a: -Infinity, b: 0.5 }, note: null });
    expect(line).toBe('{"step":3,"klInitial":"Infinity","loss":"NaN","terms":{"a":"-Infinity","b":0.5},"note":null}\n');
    const back = JSON.parse(line);
    expect([Number(back.klInitial), Number(back.loss), Number(back.terms.a)]).toEqual([Infinity, NaN, -Infinity]);
  });
});
