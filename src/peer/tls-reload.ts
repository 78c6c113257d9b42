import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { tlsFileProblems, type TlsMaterial, type TlsProblem } from './tls.js';

/** How often the certificate, key and CA files are looked at (a stat each; SIGHUP checks at once). */
export const TLS_CHECK_MS = 30_000;

export interface TlsReloaderOptions {
  /** Takes the new material: servers set their secure context, clients build a new agent. */
  onReload: (m: TlsMaterial) => void;
  /** The files changed but do not make a valid set: the material in use stays (reported once per set of problems). */
  onProblem: (problems: TlsProblem[]) => void;
  checkMs?: number;
  nowMs?: () => number;
}

/**
 * Certificates renewed without a restart: the three TLS files (`cert`, `key`, `ca`) are watched, and once
 * they change and hold a valid set again (the same checks as at start: key matches the certificate,
 * certificate issued by the CA and current, key mode 0600), every user of TLS is given the new material.
 * Connections already open keep the certificate they were set up with; new ones get the new one. A set
 * that does not pass (say the certificate was replaced before its key) changes nothing until it does.
 */
export class TlsReloader {
  private current: TlsMaterial;
  private lastProblems = '';
  private watching = false;
  reloads = 0;

  constructor(
    initial: TlsMaterial,
    private readonly o: TlsReloaderOptions,
  ) {
    this.current = initial;
  }

  get material(): TlsMaterial {
    return this.current;
  }

  start(): void {
    if (this.watching) return;
    this.watching = true;
    const interval = this.o.checkMs ?? TLS_CHECK_MS;
    for (const f of this.files()) watchFile(f, { interval, persistent: false }, this.onChange);
  }

  stop(): void {
    if (!this.watching) return;
    this.watching = false;
    for (const f of this.files()) unwatchFile(f, this.onChange);
  }

  private readonly onChange = () => void this.check();

  private files(): string[] {
    const f = this.current.files;
    return [...new Set([f.cert, f.key, f.ca])];
  }

  /** Look at the files now; true when new material was taken. */
  check(): boolean {
    const f = this.current.files;
    const read = (file: string) => {
      try {
        return readFileSync(file, 'utf8');
      } catch {
        return null;
      }
    };
    if (read(f.cert) === this.current.cert && read(f.key) === this.current.key && read(f.ca) === this.current.ca) {
      this.lastProblems = '';
      return false;
    }
    const r = tlsFileProblems(f, this.o.nowMs?.() ?? Date.now());
    if (!r.material) {
      const key = JSON.stringify(r.problems);
      if (key !== this.lastProblems) {
        this.lastProblems = key;
        this.o.onProblem(r.problems);
      }
      return false;
    }
    this.lastProblems = '';
    this.current = r.material;
    this.reloads++;
    this.o.onReload(r.material);
    return true;
  }
}
