/** A node config as YAML text for config tests: node a with peer b, fresh keys, and the lines given. */
import { randomBytes } from 'node:crypto';
import { clusterConfigSchema } from '../../src/config/schema.js';
import { clusterCrossChecks } from '../../src/config/checks.js';
import { parseConfigText } from '../../src/config/load.js';

export const SECRET = randomBytes(24).toString('base64url');
export const TOKEN = randomBytes(24).toString('base64url');
export const DATA = randomBytes(24).toString('base64url');

/** Parse and cross-check a node config the way `config check` does. */
export const check = (text: string, env: NodeJS.ProcessEnv = {}) => parseConfigText(text, clusterConfigSchema, { env, crossChecks: [clusterCrossChecks] });

/** Node a (peer b) with the keys above, then `rest` (its third vote, say). */
export function nodeConfigText(rest: string): string {
  return `
node: a
listen: { host: 127.0.0.1, port: 8701 }
secret: ${SECRET}
dataSecret: ${DATA}
adminToken: ${TOKEN}
dataDir: /tmp/x
peers: [ { node: b, urls: [ "http://127.0.0.1:8702" ] } ]
${rest}
`;
}
