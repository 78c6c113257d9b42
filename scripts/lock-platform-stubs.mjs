#!/usr/bin/env node
// The package registry this project installs from does not serve every platform build of packages with
// per-platform optional dependencies (rollup's native binaries). npm then leaves them out of
// package-lock.json and `npm ci` refuses the lock. This adds lock entries for the missing platform
// packages, marked optional with their os/cpu/libc, so `npm ci` accepts the lock and skips them on
// every platform they are not for (they are never fetched). Run after changing dependencies:
//   node scripts/lock-platform-stubs.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const lockPath = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
const pkgs = lock.packages;
const CPU = { arm: 'arm', arm64: 'arm64', x64: 'x64', ia32: 'ia32', loong64: 'loong64', ppc64: 'ppc64', riscv64: 'riscv64', s390x: 's390x' };
let added = 0;

function platformOf(name) {
  const m = /^@rollup\/rollup-([a-z0-9]+)-([a-z0-9]+)(?:-([a-z]+))?$/.exec(name);
  if (!m) return null;
  const [, os, cpu, abi] = m;
  if (!CPU[cpu]) return null;
  const entry = { os: [os], cpu: [CPU[cpu]] };
  if (os === 'linux') entry.libc = [abi && abi.startsWith('musl') ? 'musl' : 'glibc'];
  return entry;
}

for (const [path, meta] of Object.entries(pkgs)) {
  if (!meta.optionalDependencies) continue;
  for (const [dep, version] of Object.entries(meta.optionalDependencies)) {
    const key = `node_modules/${dep}`;
    if (pkgs[key] || pkgs[`${path}/node_modules/${dep}`]) continue;
    const platform = platformOf(dep);
    if (!platform) continue;
    pkgs[key] = { version, dev: meta.dev === true ? true : undefined, optional: true, ...platform };
    added++;
  }
}
const sorted = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
lock.packages = sorted;
writeFileSync(lockPath, JSON.stringify(lock, null, 2) + '\n');
console.log(`lock-platform-stubs: added ${added} platform entries`);
