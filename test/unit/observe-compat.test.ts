import { describe, expect, it } from 'vitest';
import { Observer } from '../../src/cluster/agent/observe.js';
import type { AgentCore } from '../../src/cluster/agent/state.js';
import type { View } from '../../src/cluster/decide.js';

/** The peer-compatibility events the Observer emits for a sequence of peer observations. */
function eventsFor(seq: { alive: boolean; incompatible: string | null }[]): string[] {
  const out: string[] = [];
  const core = { timings: { deadAfterMs: 500 }, peerCfg: null, d: { bus: { emit: (e: { type: string }) => out.push(e.type) } } } as unknown as AgentCore;
  const o = new Observer(core);
  let now = 0;
  for (const p of seq) {
    now += 100;
    o.observe({ now, uptimeMs: now, peer: { node: 'b', alive: p.alive, incompatible: p.incompatible, paths: [], lastSeenAgeMs: 0 } } as unknown as View);
  }
  return out.filter((t) => t.startsWith('peer_') && t !== 'peer_alive' && t !== 'peer_dead');
}

const ok = { alive: true, incompatible: null };
const bad = { alive: true, incompatible: 'speaks protocol 9' };
const gone = { alive: false, incompatible: null };

describe('peer compatibility events', () => {
  it.each([
    ['compatible throughout: nothing', [ok, ok, ok], []],
    ['incompatible, then compatible while alive', [ok, bad, bad, ok], ['peer_incompatible', 'peer_compatible']],
    // A restart onto a compatible release that takes longer than deadAfterMs: still cleared once it answers.
    ['incompatible, silent a while, back compatible', [ok, bad, gone, gone, ok], ['peer_incompatible', 'peer_compatible']],
    ['incompatible, silent a while, back still incompatible: no second alert', [ok, bad, gone, bad], ['peer_incompatible']],
    ['silent from the start, then incompatible', [gone, bad], ['peer_incompatible']],
  ] as const)('%s', (_name, seq, expected) => {
    expect(eventsFor([...seq])).toEqual(expected);
  });
});
