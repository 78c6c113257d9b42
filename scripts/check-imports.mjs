#!/usr/bin/env node
// Enforces the dependency direction of docs/architecture.md: nothing in src/ (except the composition
// root src/cli/) imports from adapters/ or fixtures/; adapters/ never import fixtures/, and from src/
// only src/ports.ts (the ports and the helpers shared with adapters) and src/errors.ts.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const violations = [];
// What an adapter may import from src/ (as written in an import: .js; .ts also accepted).
const adapterSurface = new Set(['src/ports', 'src/errors']);

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts')) check(p);
  }
}

function check(file) {
  const rel = relative(root, file);
  const text = readFileSync(file, 'utf8');
  const re = /(?:import|export)[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;
  for (const m of text.matchAll(re)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (!spec.startsWith('.')) continue;
    const target = relative(root, resolve(dirname(file), spec));
    const inCli = rel.startsWith('src/cli/');
    if (rel.startsWith('src/') && !inCli && (target.startsWith('adapters/') || target.startsWith('fixtures/'))) {
      violations.push(`${rel}: imports ${spec} (src/ must not depend on adapters/ or fixtures/; wire it in src/cli/)`);
    }
    if (rel.startsWith('adapters/') && target.startsWith('fixtures/')) {
      violations.push(`${rel}: imports ${spec} (adapters/ must not depend on fixtures/)`);
    }
    if (rel.startsWith('adapters/') && target.startsWith('src/') && !adapterSurface.has(target.replace(/\.[jt]s$/, ''))) {
      violations.push(`${rel}: imports ${spec} (adapters/ may import from src/ only src/ports.ts and src/errors.ts; re-export what they need from src/ports.ts)`);
    }
  }
}

walk(join(root, 'src'));
walk(join(root, 'adapters'));
if (violations.length) {
  console.error(`import rule violated:\n  ${violations.join('\n  ')}`);
  process.exit(1);
}
console.log('import rule: ok');
