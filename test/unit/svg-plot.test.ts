import { describe, expect, it } from 'vitest';
import { svgPlot } from '../../bench/lib/svg-plot.js';

describe('svgPlot', () => {
  const svg = svgPlot({
    title: 'soak <test>',
    xLabel: 'minutes',
    markerLegend: 'switchover',
    markers: [{ x: 5, label: 'switchover from a' }],
    panels: [
      { title: 'memory', unit: 'MiB', series: [{ label: 'a RSS', color: '#00f', points: [[0, 90], [1, 95], [2, null], [3, 97], [4, 99]] }] },
      { title: 'disk', unit: 'MiB', series: [{ label: 'a dir', color: '#f00', dashed: true, points: [[0, 10], [10, 20]] }] },
    ],
  });
  it('draws one polyline per run of samples, a gap where a sample is missing', () => {
    expect(svg.match(/<polyline /g)).toHaveLength(3);
    expect(svg).toContain('stroke-dasharray="6,3"');
  });
  it('escapes text, labels series and markers, and is one closed svg element', () => {
    expect(svg).toContain('soak &lt;test&gt;');
    expect(svg).not.toContain('<test>');
    expect(svg).toContain('>a RSS<');
    expect(svg).toContain('<title>switchover from a</title>');
    expect(svg.startsWith('<svg ')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
  });
  it('scales the y axis to a round maximum above the data', () => {
    // memory tops at 99: ticks in steps of 20 up to 100
    expect(svg).toMatch(/>100<\/text>/);
    expect(svg).not.toMatch(/>120<\/text>/);
  });
});
