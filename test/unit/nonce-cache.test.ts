import { describe, expect, it } from 'vitest';
import { MAX_SKEW_MS, NonceCache } from '../../src/peer/auth.js';

describe('NonceCache', () => {
  it('refuses a nonce used again anywhere inside the window', () => {
    const c = new NonceCache();
    const t0 = 1_700_000_000_000;
    expect(c.use('n1', t0)).toBe(true);
    expect(c.use('n1', t0 + 1)).toBe(false);
    // Other traffic meanwhile must not push it out while a replay could still carry a valid timestamp.
    for (let i = 0; i < 2 * MAX_SKEW_MS / 50; i++) c.use(`x${i}`, t0 + i * 50);
    expect(c.use('n1', t0 + 2 * MAX_SKEW_MS)).toBe(false);
  });

  it('holds one window of traffic, not its cap, under a steady stream', () => {
    const c = new NonceCache(20_000);
    const t0 = 1_700_000_000_000;
    // An hour of 20 datagrams a second (the fast profile's heartbeats over two paths).
    let most = 0;
    for (let i = 0; i < 20 * 3600; i++) {
      expect(c.use(`id-${i}`, t0 + i * 50)).toBe(true);
      most = Math.max(most, c.size);
    }
    const window = (2 * MAX_SKEW_MS) / 50;
    expect(most).toBeLessThanOrEqual(window + 1);
    expect(most).toBeGreaterThanOrEqual(window);
  });

  it('keeps at most `max` nonces in a burst inside one window, dropping the oldest', () => {
    const c = new NonceCache(100);
    const t0 = 1_700_000_000_000;
    for (let i = 0; i < 500; i++) c.use(`b${i}`, t0);
    expect(c.size).toBe(100);
    expect(c.use('b499', t0)).toBe(false);
    expect(c.use('b0', t0)).toBe(true);
  });

  it('does not let a clock step backwards empty it', () => {
    const c = new NonceCache();
    const t0 = 1_700_000_000_000;
    c.use('a', t0);
    expect(c.use('b', t0 - 10_000)).toBe(true);
    expect(c.use('a', t0 - 10_000)).toBe(false);
  });
});
