/**
 * The EC2 and WSRF probes against HTTPS frontends the way a real head node serves them: a host
 * certificate for the head node's hostname, issued by a private CA, reached at 127.0.0.1. With the CA
 * file and the server name the probe passes; without the CA, or with another name, it fails and says why.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ec2Probe, httpsReachableProbe } from '../../adapters/nimbus/ec2-probe.js';
import { tempDir } from './helpers.js';

const HOST = 'head.example.org';

describe('HTTPS probes with a private CA and a server name', () => {
  const dir = tempDir('tls');
  let server: Server;
  let url = '';
  const caFile = join(dir, 'ca.pem');

  beforeAll(async () => {
    const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    o(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Test Nimbus CA']);
    o(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'host.key', '-out', 'host.csr', '-subj', `/CN=${HOST}`]);
    writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=DNS:${HOST}\n`);
    o(['x509', '-req', '-in', 'host.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'host.pem', '-days', '2', '-extfile', 'ext.cnf']);
    server = createServer({ key: readFileSync(join(dir, 'host.key')), cert: readFileSync(join(dir, 'host.pem')) }, (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end('<DescribeAvailabilityZonesResponse><availabilityZoneInfo><item><zoneName>default</zoneName></item></availabilityZoneInfo></DescribeAvailabilityZonesResponse>');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const a = server.address();
    url = `https://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/`;
  });

  afterAll(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    rmSync(dir, { recursive: true, force: true });
  });

  const credentials = { accessKeyId: 'probe', secretAccessKey: 'probe-secret' };

  it('passes with the CA file and the head node hostname', async () => {
    const r = await ec2Probe({ url, credentials, tls: { caFile, serverName: HOST } })(3000);
    expect(r.ok, r.detail).toBe(true);
    expect(r.detail).toContain('1 zone');
    const w = await httpsReachableProbe({ url, tls: { caFile, serverName: HOST } })(3000);
    expect(w.ok, w.detail).toBe(true);
  });

  it('fails without the CA, and with a name the certificate does not carry', async () => {
    const noCa = await ec2Probe({ url, credentials, tls: { serverName: HOST } })(3000);
    expect(noCa.ok).toBe(false);
    expect(noCa.detail).toMatch(/certificate/i);
    const wrongName = await ec2Probe({ url, credentials, tls: { caFile, serverName: 'other.example.org' } })(3000);
    expect(wrongName.ok).toBe(false);
    expect(wrongName.detail).toMatch(/altnames|other\.example\.org/);
    const byAddress = await httpsReachableProbe({ url, tls: { caFile } })(3000);
    expect(byAddress.ok).toBe(false);
  });
});
