/**
 * Disk watermarks of the volumes the sidecar writes (data, database, WAL archive, quarantine, history):
 * free bytes and percent as metrics, a warning event when a volume's use reaches `warnPercent`, a
 * critical one at `criticalPercent`, and an info event when it falls back below the warning mark.
 * Several paths on one file system are reported each under their own name (a volume is what a path
 * lives on); a path that does not exist yet is measured at its nearest existing parent.
 */
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Gauge, type Registry } from 'prom-client';
import type { EventInput } from '../events/bus.js';

export interface DiskVolume {
  /** What the sidecar keeps there: data, db, archive, quarantine, history. */
  name: string;
  path: string;
}

export interface DiskSample {
  name: string;
  path: string;
  totalBytes: number;
  freeBytes: number;
  /** Free share for unprivileged writers (bavail / blocks), 0..100. */
  freePercent: number;
  usedPercent: number;
  level: DiskLevel;
}

export type DiskLevel = 'ok' | 'warning' | 'critical';

export interface DiskWatchOptions {
  volumes: DiskVolume[];
  warnPercent: number;
  criticalPercent: number;
  emit?: (e: EventInput) => void;
  /** statfs (tests inject full or failing volumes). */
  statfs?: (path: string) => Promise<{ blocks: number; bavail: number; bsize: number }>;
}

/** The level of a volume used `usedPercent` full. */
export function diskLevel(usedPercent: number, warnPercent: number, criticalPercent: number): DiskLevel {
  if (usedPercent >= criticalPercent) return 'critical';
  if (usedPercent >= warnPercent) return 'warning';
  return 'ok';
}

async function statNearest(path: string, fn: NonNullable<DiskWatchOptions['statfs']>): Promise<{ blocks: number; bavail: number; bsize: number } | null> {
  let p = path;
  for (let i = 0; i < 64; i++) {
    try {
      return await fn(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return null;
      const up = dirname(p);
      if (up === p) return null;
      p = up;
    }
  }
  return null;
}

export class DiskWatch {
  private readonly levels = new Map<string, DiskLevel>();
  private samples: DiskSample[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: DiskWatchOptions) {}

  /** Measures every volume once, emitting events on level changes. Never throws. */
  async sample(): Promise<DiskSample[]> {
    const fn = this.o.statfs ?? ((p: string) => statfs(p));
    const out: DiskSample[] = [];
    for (const v of this.o.volumes) {
      const s = await statNearest(v.path, fn);
      if (!s || s.blocks <= 0) continue;
      const freeBytes = s.bavail * s.bsize;
      const totalBytes = s.blocks * s.bsize;
      const freePercent = (100 * s.bavail) / s.blocks;
      const usedPercent = 100 - freePercent;
      const level = diskLevel(usedPercent, this.o.warnPercent, this.o.criticalPercent);
      out.push({ name: v.name, path: v.path, totalBytes, freeBytes, freePercent, usedPercent, level });
      const before = this.levels.get(v.name) ?? 'ok';
      this.levels.set(v.name, level);
      if (level === before) continue;
      const pct = usedPercent.toFixed(1);
      const details = { volume: v.name, path: v.path, usedPercent: Number(pct), freeBytes, warnPercent: this.o.warnPercent, criticalPercent: this.o.criticalPercent };
      if (level === 'ok') {
        this.o.emit?.({ type: 'disk.ok', severity: 'info', message: `${v.name} volume (${v.path}) back below ${this.o.warnPercent} % used (${pct} %)`, details });
      } else {
        this.o.emit?.({
          type: `disk.${level}`,
          severity: level,
          message: `${v.name} volume (${v.path}) ${pct} % used, ${Math.round(freeBytes / 1024 / 1024)} MiB free (${level} at ${level === 'critical' ? this.o.criticalPercent : this.o.warnPercent} %)`,
          details,
        });
      }
    }
    this.samples = out;
    return out;
  }

  last(): DiskSample[] {
    return this.samples;
  }

  start(intervalMs: number): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Metrics extension (api/metrics.ts): free bytes and percent per volume, measured at scrape time. */
  metrics(): (registry: Registry) => void {
    return (registry) => {
      // Both gauges are collected concurrently in one scrape: they share one measurement.
      let shared: { at: number; p: Promise<DiskSample[]> } | null = null;
      const sample = () => {
        if (!shared || Date.now() - shared.at > 1000) shared = { at: Date.now(), p: this.sample() };
        return shared.p;
      };
      const gauge = (name: string, help: string, value: (x: DiskSample) => number) =>
        new Gauge({
          name,
          help,
          labelNames: ['volume', 'path'],
          registers: [registry],
          async collect() {
            const s = await sample();
            this.reset();
            for (const x of s) this.set({ volume: x.name, path: x.path }, value(x));
          },
        });
      gauge('nimbus_ha_disk_free_bytes', 'free bytes of each volume the sidecar writes (for unprivileged writers)', (x) => x.freeBytes);
      gauge('nimbus_ha_disk_free_percent', 'free share of each volume the sidecar writes, percent', (x) => x.freePercent);
    };
  }
}
