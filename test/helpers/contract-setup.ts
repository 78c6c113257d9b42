/**
 * Setup of the integration, security and upgrade projects: every answer a test reads through
 * Cluster.request (status, events, admin calls, ...) is checked against docs/openapi.yaml, and a file
 * whose clusters saw an answer the document does not describe fails in its afterAll.
 */
import { afterAll } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';
import { OpenApiContract } from './openapi-contract.js';

const contract = new OpenApiContract();
const clusters = new Set<Cluster>();
const request = Cluster.prototype.request;
Cluster.prototype.request = function (this: Cluster, ...args: Parameters<Cluster['request']>) {
  this.contract ??= contract;
  clusters.add(this);
  return request.apply(this, args);
};

afterAll(() => {
  const problems = [...new Set([...clusters].flatMap((c) => c.contractProblems))];
  clusters.clear();
  if (problems.length === 0) return;
  if (process.env.NHA_CONTRACT_REPORT) {
    console.warn(`openapi contract: ${problems.length} problem(s):\n${problems.join('\n')}`);
    return;
  }
  throw new Error(`answers not described by docs/openapi.yaml (${problems.length}):\n${problems.slice(0, 20).join('\n')}`);
});
