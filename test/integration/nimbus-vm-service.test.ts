/**
 * The Nimbus-like VM service against real PostgreSQL (embedded) and a real s3rver, driven by the
 * unmodified AWS SDK (v4 signatures) and by our own v2 signer.
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreateKeyPairCommand,
  DeleteKeyPairCommand,
  DescribeAvailabilityZonesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  DescribeRegionsCommand,
  DescribeSecurityGroupsCommand,
  EC2Client,
  ImportKeyPairCommand,
  RebootInstancesCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedV2Request } from '../../adapters/nimbus/ec2-sign.js';
import type { VmServiceConfig } from '../../fixtures/nimbus-vm-service/config.js';
import { createPool, ensureSchema } from '../../fixtures/nimbus-vm-service/db.js';
import { createUser, type CloudUser } from '../../fixtures/nimbus-vm-service/new-user.js';
import { startCumulusStandIn, startEmbeddedPostgres, type RunningCumulus, type RunningPostgres } from '../../fixtures/nimbus-vm-service/sandbox.js';
import { createVmService, type VmService } from '../../fixtures/nimbus-vm-service/server.js';

const TIMERS = { pendingMs: 400, rebootMs: 1000, shutdownMs: 400 };

let root: string;
let postgres: RunningPostgres;
let cumulus: RunningCumulus;
let pool: pg.Pool;
let alice: CloudUser;
let bob: CloudUser;
let config: VmServiceConfig;
let service: VmService;
const started: VmService[] = [];

function ec2For(user: Pick<CloudUser, 'accessId' | 'secret'>, url = service.url): EC2Client {
  return new EC2Client({
    endpoint: url,
    region: 'us-east-1',
    maxAttempts: 1,
    credentials: { accessKeyId: user.accessId, secretAccessKey: user.secret },
  });
}

async function startService(overrides: Partial<VmServiceConfig> = {}): Promise<VmService> {
  const s = await createVmService({ ...config, ...overrides });
  started.push(s);
  return s;
}

async function stateOf(client: EC2Client, ids: string[]): Promise<string[]> {
  const out = await client.send(new DescribeInstancesCommand({ InstanceIds: ids }));
  const byId = new Map((out.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => [i.InstanceId, i.State?.Name]));
  return ids.map((id) => String(byId.get(id)));
}

/** Polls until every instance is in `state` (bounded: 10 s). */
async function waitForState(client: EC2Client, ids: string[], state: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  let last: string[] = [];
  while (Date.now() < deadline) {
    last = await stateOf(client, ids);
    if (last.every((s) => s === state)) return;
    await delay(100);
  }
  throw new Error(`instances ${ids.join(',')} did not reach ${state}: ${last.join(',')}`);
}

async function instanceCount(userName: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    'select count(*)::int as n from instances i join users u on u.id = i.user_id where u.name = $1',
    [userName],
  );
  return rows[0].n;
}

function errorOf(p: Promise<unknown>): Promise<{ name: string; status?: number; message: string }> {
  return p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: { name: string; message: string; $metadata?: { httpStatusCode?: number } }) => ({
      name: err.name,
      status: err.$metadata?.httpStatusCode,
      message: err.message,
    }),
  );
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'nimbus-vm-'));
  await chmod(root, 0o755);
  postgres = await startEmbeddedPostgres(join(root, 'pg'));
  cumulus = await startCumulusStandIn(join(root, 's3'));
  pool = createPool(postgres.url);
  await ensureSchema(pool);
  alice = await createUser(pool, 'alice');
  bob = await createUser(pool, 'bob');
  const s3 = new S3Client({
    endpoint: cumulus.url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: cumulus.accessKeyId, secretAccessKey: cumulus.secretAccessKey },
  });
  await s3.send(new PutObjectCommand({ Bucket: 'Repo', Key: `VMS/${alice.canonicalId}/alice-vm`, Body: 'disk of alice' }));
  await s3.send(new PutObjectCommand({ Bucket: 'Repo', Key: 'VMS/common/ubuntu10.10', Body: 'public disk' }));
  s3.destroy();
  config = {
    host: '127.0.0.1',
    port: 0,
    region: 'nimbus',
    zones: ['default'],
    databaseUrl: postgres.url,
    cumulus: { url: cumulus.url, bucket: 'Repo', accessKeyId: cumulus.accessKeyId, secretAccessKey: cumulus.secretAccessKey, region: 'us-east-1' },
    timers: TIMERS,
    maxCount: 20,
    networkPools: [],
  };
  service = await startService();
});

afterAll(async () => {
  for (const s of started) await s.close().catch(() => undefined);
  await pool?.end().catch(() => undefined);
  await cumulus?.stop().catch(() => undefined);
  await postgres?.stop().catch(() => undefined);
  if (root) await rm(root, { recursive: true, force: true });
});

describe('nimbus VM service: EC2 API through the AWS SDK (signature v4)', () => {
  it('answers zones, regions and security groups', async () => {
    const ec2 = ec2For(alice);
    const zones = await ec2.send(new DescribeAvailabilityZonesCommand({}));
    expect(zones.AvailabilityZones?.map((z) => [z.ZoneName, z.State, z.RegionName])).toEqual([['default', 'available', 'nimbus']]);
    const regions = await ec2.send(new DescribeRegionsCommand({}));
    expect(regions.Regions?.[0].RegionName).toBe('nimbus');
    const groups = await ec2.send(new DescribeSecurityGroupsCommand({}));
    expect(groups.SecurityGroups?.[0]).toMatchObject({ GroupName: 'default', OwnerId: alice.canonicalId });
  });

  it('lists the images each user can see in the Cumulus repository', async () => {
    const mine = await ec2For(alice).send(new DescribeImagesCommand({}));
    expect(mine.Images?.map((i) => [i.ImageId, i.Public, i.OwnerId]).sort()).toEqual([
      ['alice-vm', false, alice.canonicalId],
      ['ubuntu10.10', true, 'common'],
    ]);
    const theirs = await ec2For(bob).send(new DescribeImagesCommand({}));
    expect(theirs.Images?.map((i) => i.ImageId)).toEqual(['ubuntu10.10']);
    const err = await errorOf(ec2For(bob).send(new DescribeImagesCommand({ ImageIds: ['alice-vm'] })));
    expect(err.name).toBe('InvalidAMIID.NotFound');
  });

  it('creates, imports, describes and deletes key pairs', async () => {
    const ec2 = ec2For(alice);
    const created = await ec2.send(new CreateKeyPairCommand({ KeyName: 'made-here' }));
    expect(created.KeyMaterial).toContain('BEGIN RSA PRIVATE KEY');
    expect(created.KeyFingerprint).toMatch(/^([0-9a-f]{2}:){19}[0-9a-f]{2}$/);

    const { publicKey } = generateKeyPairSync('ed25519');
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
    const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
    const line = `ssh-ed25519 ${Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]).toString('base64')} me@laptop`;
    const imported = await ec2.send(new ImportKeyPairCommand({ KeyName: 'laptop', PublicKeyMaterial: Buffer.from(line) }));
    // EC2 gives ED25519 keys the base64 SHA-256 of the key (MD5 of the DER key is for RSA).
    expect(imported.KeyFingerprint).toMatch(/^[A-Za-z0-9+/]{43}=$/);

    const bad = await errorOf(ec2.send(new ImportKeyPairCommand({ KeyName: 'junk', PublicKeyMaterial: Buffer.from('not a key') })));
    expect(bad.name).toBe('InvalidKeyPair.Format');
    const dup = await errorOf(ec2.send(new CreateKeyPairCommand({ KeyName: 'laptop' })));
    expect(dup.name).toBe('InvalidKeyPair.Duplicate');

    const all = await ec2.send(new DescribeKeyPairsCommand({}));
    expect(all.KeyPairs?.map((k) => [k.KeyName, k.KeyFingerprint])).toEqual([
      ['laptop', imported.KeyFingerprint],
      ['made-here', created.KeyFingerprint],
    ]);
    expect((await ec2For(bob).send(new DescribeKeyPairsCommand({}))).KeyPairs).toEqual([]);

    await ec2.send(new DeleteKeyPairCommand({ KeyName: 'made-here' }));
    const left = await ec2.send(new DescribeKeyPairsCommand({}));
    expect(left.KeyPairs?.map((k) => k.KeyName)).toEqual(['laptop']);
    const gone = await errorOf(ec2.send(new DescribeKeyPairsCommand({ KeyNames: ['made-here'] })));
    expect(gone.name).toBe('InvalidKeyPair.NotFound');
  });

  it('runs, describes, reboots and terminates instances as the simulated VMM advances', async () => {
    const ec2 = ec2For(alice);
    const run = await ec2.send(new RunInstancesCommand({ ImageId: 'ubuntu10.10', MinCount: 2, MaxCount: 2, KeyName: 'laptop', InstanceType: 'm1.large' }));
    const ids = (run.Instances ?? []).map((i) => String(i.InstanceId));
    expect(ids).toHaveLength(2);
    expect(run.OwnerId).toBe(alice.canonicalId);
    expect(run.Instances?.map((i) => [i.State?.Name, i.State?.Code, i.KeyName, i.InstanceType])).toEqual([
      ['pending', 0, 'laptop', 'm1.large'],
      ['pending', 0, 'laptop', 'm1.large'],
    ]);
    await waitForState(ec2, ids, 'running');

    await ec2.send(new RebootInstancesCommand({ InstanceIds: [ids[0]] }));
    expect(await stateOf(ec2, ids)).toEqual(['pending', 'running']);
    await waitForState(ec2, ids, 'running');

    const term = await ec2.send(new TerminateInstancesCommand({ InstanceIds: ids }));
    expect(term.TerminatingInstances?.map((t) => [t.PreviousState?.Name, t.CurrentState?.Name])).toEqual([
      ['running', 'shutting-down'],
      ['running', 'shutting-down'],
    ]);
    await waitForState(ec2, ids, 'terminated');
    const again = await errorOf(ec2.send(new RebootInstancesCommand({ InstanceIds: ids })));
    expect(again.name).toBe('IncorrectInstanceState');

    const stranger = await errorOf(ec2For(bob).send(new TerminateInstancesCommand({ InstanceIds: [ids[0]] })));
    expect(stranger.name).toBe('InvalidInstanceID.NotFound');
    const running = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['running'] }] }));
    expect((running.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId)).not.toContain(ids[0]);
  });

  it('refuses unknown images, unknown key pairs and bad counts', async () => {
    const ec2 = ec2For(alice);
    expect((await errorOf(ec2.send(new RunInstancesCommand({ ImageId: 'nope', MinCount: 1, MaxCount: 1 })))).name).toBe('InvalidAMIID.NotFound');
    expect((await errorOf(ec2.send(new RunInstancesCommand({ ImageId: 'alice-vm', MinCount: 1, MaxCount: 1, KeyName: 'nokey' })))).name).toBe(
      'InvalidKeyPair.NotFound',
    );
    expect((await errorOf(ec2.send(new RunInstancesCommand({ ImageId: 'alice-vm', MinCount: 3, MaxCount: 2 })))).name).toBe('InvalidParameterValue');
  });

  it('answers AuthFailure (401) to a wrong secret and to an unknown access id', async () => {
    const wrong = await errorOf(ec2For({ accessId: alice.accessId, secret: 'not-the-secret' }).send(new DescribeInstancesCommand({})));
    expect(wrong).toMatchObject({ name: 'AuthFailure', status: 401 });
    const unknown = await errorOf(ec2For({ accessId: 'NOBODY', secret: alice.secret }).send(new DescribeInstancesCommand({})));
    expect(unknown).toMatchObject({ name: 'AuthFailure', status: 401 });
  });

  it('returns the original reservation for a retried ClientToken and starts nothing new', async () => {
    const ec2 = ec2For(bob);
    const before = await instanceCount('bob');
    const first = await ec2.send(new RunInstancesCommand({ ImageId: 'ubuntu10.10', MinCount: 1, MaxCount: 3, ClientToken: 'retry-me' }));
    expect(await instanceCount('bob')).toBe(before + 3);
    const retry = await ec2.send(new RunInstancesCommand({ ImageId: 'ubuntu10.10', MinCount: 1, MaxCount: 3, ClientToken: 'retry-me' }));
    expect(retry.ReservationId).toBe(first.ReservationId);
    expect(retry.Instances?.map((i) => i.InstanceId)).toEqual(first.Instances?.map((i) => i.InstanceId));
    expect(await instanceCount('bob')).toBe(before + 3);

    const mismatch = await errorOf(ec2.send(new RunInstancesCommand({ ImageId: 'ubuntu10.10', MinCount: 1, MaxCount: 1, ClientToken: 'retry-me' })));
    expect(mismatch.name).toBe('IdempotentParameterMismatch');
    // The same token belongs to each user separately.
    const other = await ec2For(alice).send(new RunInstancesCommand({ ImageId: 'ubuntu10.10', MinCount: 1, MaxCount: 1, ClientToken: 'retry-me' }));
    expect(other.ReservationId).not.toBe(first.ReservationId);
    expect(await instanceCount('bob')).toBe(before + 3);
  });
});

describe('nimbus VM service: signature version 2 and raw EC2 XML', () => {
  async function v2(action: string, params: Record<string, string>, secret = alice.secret, method: 'GET' | 'POST' = 'POST') {
    const { url, init } = signedV2Request({ endpoint: service.url, action, params, method, credentials: { accessKeyId: alice.accessId, secretAccessKey: secret } });
    const res = await fetch(url, init);
    return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
  }

  it('accepts v2-signed GET and POST requests and answers EC2 2009-08-15 XML', async () => {
    for (const method of ['GET', 'POST'] as const) {
      const r = await v2('DescribeAvailabilityZones', {}, alice.secret, method);
      expect(r.status).toBe(200);
      expect(r.type).toMatch(/^text\/xml/);
      expect(r.body).toContain('<DescribeAvailabilityZonesResponse xmlns="http://ec2.amazonaws.com/doc/2009-08-15/"><requestId>');
      expect(r.body).toContain('<zoneName>default</zoneName>');
    }
    const run = await v2('RunInstances', { ImageId: 'alice-vm', MinCount: '1', MaxCount: '1' });
    expect(run.status).toBe(200);
    expect(run.body).toMatch(/<instanceId>i-[0-9a-f]{8}<\/instanceId>/);
    expect(run.body).toContain('<instanceState><code>0</code><name>pending</name></instanceState>');
  });

  it('answers EC2 error documents: AuthFailure, InvalidAction, MissingParameter', async () => {
    const cases: [string, Record<string, string>, string, number, string?][] = [
      ['DescribeInstances', {}, 'AuthFailure', 401, 'wrong-secret'],
      ['Frobnicate', {}, 'InvalidAction', 400],
      ['RunInstances', { MinCount: '1', MaxCount: '1' }, 'MissingParameter', 400],
      ['TerminateInstances', {}, 'MissingParameter', 400],
      ['RequestSpotInstances', {}, 'MissingParameter', 400],
    ];
    for (const [action, params, code, status, secret] of cases) {
      const r = await v2(action, params, secret);
      expect(r.status, action).toBe(status);
      expect(r.body).toMatch(new RegExp(`^<\\?xml[^>]*>\\n<Response><Errors><Error><Code>${code.replace('.', '\\.')}</Code><Message>[^<]+</Message></Error></Errors><RequestID>[0-9a-f-]{36}</RequestID></Response>$`));
    }
    const unsigned = await fetch(`${service.url}?Action=DescribeInstances`);
    expect(unsigned.status).toBe(401);
  });
});

describe('nimbus VM service: durable state', () => {
  it('derives instance states from stored timestamps, so they advance across a restart', async () => {
    const first = await startService({ timers: { pendingMs: 600, rebootMs: 600, shutdownMs: 600 } });
    const run = await ec2For(alice, first.url).send(new RunInstancesCommand({ ImageId: 'alice-vm', MinCount: 1, MaxCount: 1 }));
    const id = String(run.Instances?.[0].InstanceId);
    expect(run.Instances?.[0].State?.Name).toBe('pending');
    await first.close();
    await delay(800);
    const second = await startService();
    const ec2 = ec2For(alice, second.url);
    expect(await stateOf(ec2, [id])).toEqual(['running']);
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    await second.close();
    await delay(1000);
    const third = await startService();
    expect(await stateOf(ec2For(alice, third.url), [id])).toEqual(['terminated']);
  });

  it('hands out network-pool addresses and refuses launches beyond the pool', async () => {
    const entry = (n: number) => ({ pool: 'public', hostname: `vm${n}`, ip: `10.9.0.${n}`, gateway: '10.9.0.1', broadcast: '10.9.0.255', netmask: '255.255.255.0' });
    const pooled = await startService({ networkPools: [{ name: 'public', dns: '10.9.0.53', entries: [entry(11), entry(12)] }] });
    const ec2 = ec2For(bob, pooled.url);
    const run = await ec2.send(new RunInstancesCommand({ ImageId: 'ubuntu10.10', MinCount: 1, MaxCount: 5 }));
    expect(run.Instances?.map((i) => [i.PrivateIpAddress, i.PublicDnsName])).toEqual([
      ['10.9.0.11', 'vm11'],
      ['10.9.0.12', 'vm12'],
    ]);
    const full = await errorOf(ec2.send(new RunInstancesCommand({ ImageId: 'ubuntu10.10', MinCount: 1, MaxCount: 1 })));
    expect(full.name).toBe('InsufficientInstanceCapacity');
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [String(run.Instances?.[0].InstanceId)] }));
    await delay(TIMERS.shutdownMs + 100);
    const reused = await ec2.send(new RunInstancesCommand({ ImageId: 'ubuntu10.10', MinCount: 1, MaxCount: 1 }));
    expect(reused.Instances?.[0].PrivateIpAddress).toBe('10.9.0.11');
  });
});
