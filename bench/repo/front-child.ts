/**
 * Child process of the repository bench: the write-through front (always in sync, as on a primary with
 * its standby) between two endpoints. Usage: front-child.js LOCAL_URL PEER_URL. Prints {url} when ready;
 * on a line "rss" on stdin prints {maxRssBytes}; exits when stdin closes.
 */
import { createInterface } from 'node:readline';
import { RepoFront } from '../../adapters/cumulus/front.js';
import { FrontGuard } from '../../src/replication/repo/front-guard.js';
import { ACCESS, SECRET } from './servers.js';

const [local, peer] = process.argv.slice(2) as [string, string];
const guard = new FrontGuard({ degradeAfterMs: 60_000, claim: async () => true, now: () => performance.now() });
await guard.tick(true);
const front = new RepoFront({
  host: '127.0.0.1',
  port: 0,
  local: { endpoint: local, accessKeyId: ACCESS, secretAccessKey: SECRET },
  peer: { endpoint: peer, accessKeyId: ACCESS, secretAccessKey: SECRET },
  guard: () => guard,
});
await front.start();
console.log(JSON.stringify({ url: front.url }));
const rl = createInterface({ input: process.stdin });
rl.on('line', (l) => {
  // resourceUsage().maxRSS is in KiB.
  if (l.trim() === 'rss') console.log(JSON.stringify({ maxRssBytes: process.resourceUsage().maxRSS * 1024, stats: front.stats }));
});
rl.on('close', () => void front.close().finally(() => process.exit(0)));
