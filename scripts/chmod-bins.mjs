// Makes every `bin` entry of package.json executable after the build: the files are written by tsc,
// which does not keep an executable bit, and npm links bins before `prepare` rebuilds them.
import { chmodSync, readFileSync, statSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const bins = typeof pkg.bin === 'string' ? [pkg.bin] : Object.values(pkg.bin ?? {});
for (const rel of bins) {
  const file = new URL(`../${rel}`, import.meta.url);
  const mode = statSync(file).mode;
  chmodSync(file, mode | 0o111);
}
