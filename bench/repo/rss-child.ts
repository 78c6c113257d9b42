/**
 * Child process of the repository bench: one sync pass (a single large object) between two endpoints
 * given as arguments, then prints its own peak RSS. Usage: rss-child.js SOURCE_URL TARGET_URL. The bench
 * starts it with the Node flags of the nimbus-ha executable (src/cli/node-flags.ts), as `repo sync` runs.
 */
import { S3Store } from '../../adapters/cumulus/s3-store.js';
import { syncRepo } from '../../src/replication/repo/engine.js';
import { ACCESS, SECRET } from './servers.js';

const [from, to] = process.argv.slice(2);
const mk = (endpoint: string) => new S3Store({ endpoint, bucket: 'Repo', accessKeyId: ACCESS, secretAccessKey: SECRET });
const source = mk(from);
const target = mk(to);
const r = await syncRepo(source, target);
source.close();
target.close();
// resourceUsage().maxRSS is in KiB.
console.log(JSON.stringify({ copied: r.copied, bytes: r.bytes, durationMs: r.durationMs, failed: r.failed, maxRssBytes: process.resourceUsage().maxRSS * 1024 }));
