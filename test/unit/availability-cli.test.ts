import { describe, expect, it, vi } from 'vitest';
import { Command } from 'commander';
import {
  availabilityReport,
  formatAvailabilityReport,
  parseHistoryLines,
  registerAvailabilityCommand,
} from '../../src/cli/availability.js';
import { paperParams } from '../../src/availability/ctmc.js';

describe('availability command', () => {
  it('prints a table with both configurations', () => {
    const text = formatAvailabilityReport(availabilityReport(paperParams));
    expect(text).toMatch(/single head node \(1 server, 1 switch\)\s+0\.9975062\s+21\.85 h\/yr/);
    expect(text).toMatch(/active\/standby pair \(2 servers, 2 switches\)\s+0\.9999915\s+4\.45 min\/yr/);
  });

  it('adds observed figures from a history', () => {
    const history = [
      { type: 'agent_started', time: '2025-01-01T00:00:00Z' },
      { type: 'failover', time: '2025-01-01T05:00:00Z', details: { downtimeMs: 3_600_000 } },
      { type: 'status', time: '2025-01-01T10:00:00Z' },
    ]
      .map((e) => JSON.stringify({ node: 'a', epoch: 1, severity: 'info', message: 'm', ...e }))
      .join('\n');
    const report = availabilityReport(paperParams, parseHistoryLines(history + '\n\n'));
    expect(report.observed).toMatchObject({ failures: 1, availability: 0.9 });
    expect(formatAvailabilityReport(report)).toMatch(/availability {2}0\.9000000/);
  });

  it('names the bad line of a history file', () => {
    expect(() => parseHistoryLines('{"type":"x","time":"2025-01-01T00:00:00Z"}\nnot json', 'h.jsonl')).toThrow(
      /h\.jsonl:2 is not JSON/,
    );
    expect(() => parseHistoryLines('{"foo":1}', 'h.jsonl')).toThrow(/h\.jsonl:1 is not an event/);
  });

  it('parses rate options and prints JSON', async () => {
    const program = new Command().exitOverride();
    registerAvailabilityCommand(program);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      await program.parseAsync(['availability', '--json', '--lambda-v', '0.002'], { from: 'user' });
      const json = JSON.parse(String(out.mock.calls[0][0]));
      expect(json.params).toEqual({ ...paperParams, lambdaV: 0.002 });
      expect(json.model.single.downtimeHoursPerYear).toBeCloseTo(39.24, 2);
    } finally {
      out.mockRestore();
    }
    const bad = new Command().exitOverride().configureOutput({ writeErr: () => undefined });
    registerAvailabilityCommand(bad);
    await expect(bad.parseAsync(['availability', '--mu', '-1'], { from: 'user' })).rejects.toThrow(/positive rate/);
  });
});
