/**
 * The stand-ins driven by a client nobody here wrote: the real AWS CLI (Debian `awscli`, installed by
 * scripts/install-system-deps.sh) against the VM service's EC2 Query API (every action it serves) and
 * the Cumulus stand-in's S3 API (uploads and listings). Loopback only; ports are bound as 0 and read
 * back. Skips with a message when `aws` is not on PATH.
 */
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter as PATH_SEP, join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCumulus, type CumulusHandle } from '../../fixtures/cumulus/server.js';
import type { VmServiceConfig } from '../../fixtures/nimbus-vm-service/config.js';
import { createPool, ensureSchema } from '../../fixtures/nimbus-vm-service/db.js';
import { createUser, type CloudUser } from '../../fixtures/nimbus-vm-service/new-user.js';
import { startEmbeddedPostgres, type RunningPostgres } from '../../fixtures/nimbus-vm-service/sandbox.js';
import { createVmService, type VmService } from '../../fixtures/nimbus-vm-service/server.js';

function findAws(): string | null {
  for (const dir of (process.env.PATH ?? '').split(PATH_SEP)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, 'aws'), constants.X_OK);
      return join(dir, 'aws');
    } catch {
      /* next */
    }
  }
  return null;
}

const aws = findAws();
if (!aws) console.warn('skipping the AWS CLI tests of the stand-ins: `aws` is not on PATH (Debian package awscli; sudo bash scripts/install-system-deps.sh)');

const CUMULUS_KEY = 'cumulus-cli-key';
const CUMULUS_SECRET = 'cumulus-cli-secret-0123456789';

let root: string;
let postgres: RunningPostgres | undefined;
let cumulus: CumulusHandle | undefined;
let service: VmService | undefined;
let pool: pg.Pool | undefined;
let alice: CloudUser;
let bob: CloudUser;

/** The CLI's environment: no profile, config or CA bundle of this machine, no proxy, credentials given. */
function cliEnv(accessKeyId: string, secret: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(AWS_|HTTPS?_PROXY$|ALL_PROXY$|NO_PROXY$|REQUESTS_CA_BUNDLE$|CURL_CA_BUNDLE$|SSL_CERT_FILE$|SSL_CERT_DIR$|NODE_EXTRA_CA_CERTS$)/i.test(k)) continue;
    env[k] = v;
  }
  return {
    ...env,
    HOME: join(root, 'home'),
    AWS_CONFIG_FILE: join(root, 'home', 'no-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(root, 'home', 'no-credentials'),
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: secret,
    AWS_DEFAULT_REGION: 'nimbus',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_MAX_ATTEMPTS: '1',
    AWS_PAGER: '',
    NO_PROXY: '127.0.0.1,localhost',
  };
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(env: NodeJS.ProcessEnv, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(aws ?? 'aws', args, { env, timeout: 60_000, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** `aws ec2 ...` as a user; resolves the parsed JSON output, throws with stderr on failure. */
async function ec2(user: CloudUser, ...args: string[]): Promise<Record<string, unknown>> {
  const r = await run(cliEnv(user.accessId, user.secret), ['--endpoint-url', service!.url, '--output', 'json', 'ec2', ...args]);
  if (r.code !== 0) throw new Error(`aws ec2 ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : {};
}

/** `aws ec2 ...` expected to fail; resolves stderr. */
async function ec2Error(user: CloudUser, ...args: string[]): Promise<string> {
  const r = await run(cliEnv(user.accessId, user.secret), ['--endpoint-url', service!.url, '--output', 'json', 'ec2', ...args]);
  expect(r.code, `aws ec2 ${args.join(' ')} should fail`).not.toBe(0);
  return r.stderr;
}

async function s3(...args: string[]): Promise<string> {
  const r = await run(cliEnv(CUMULUS_KEY, CUMULUS_SECRET), ['--endpoint-url', cumulus!.url, ...args]);
  if (r.code !== 0) throw new Error(`aws ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

type Item = Record<string, unknown>;
const items = (v: unknown) => (v ?? []) as Item[];

beforeAll(async () => {
  if (!aws) return;
  root = await mkdtemp(join(tmpdir(), 'nimbus-cli-'));
  await chmod(root, 0o755);
  await mkdir(join(root, 'home'), { recursive: true });
  postgres = await startEmbeddedPostgres(join(root, 'pg'));
  cumulus = await startCumulus({ dir: join(root, 'cumulus'), accessKeyId: CUMULUS_KEY, secretAccessKey: CUMULUS_SECRET });
  pool = createPool(postgres.url);
  await ensureSchema(pool);
  alice = await createUser(pool, 'alice');
  bob = await createUser(pool, 'bob');
  const config: VmServiceConfig = {
    host: '127.0.0.1',
    port: 0,
    region: 'nimbus',
    zones: ['default'],
    databaseUrl: postgres.url,
    cumulus: { url: cumulus.url, bucket: 'Repo', accessKeyId: CUMULUS_KEY, secretAccessKey: CUMULUS_SECRET, region: 'us-east-1' },
    timers: { pendingMs: 200, rebootMs: 200, shutdownMs: 200 },
    maxCount: 20,
    networkPools: [],
    instanceTypes: ['m1.small', 'm1.large', 'm1.xlarge'],
    capacity: 3,
    spot: { minPrice: 0.1, instanceType: 'm1.small' },
  };
  service = await createVmService(config);
}, 120_000);

afterAll(async () => {
  await service?.close().catch(() => undefined);
  await pool?.end().catch(() => undefined);
  await cumulus?.close().catch(() => undefined);
  await postgres?.stop().catch(() => undefined);
  if (root) await rm(root, { recursive: true, force: true });
});

describe.skipIf(!aws)('the stand-ins through the real AWS CLI', () => {
  // Independent CLI calls run side by side: each aws process spends about a second of CPU starting.
  it('Cumulus: uploads with aws s3 cp; aws s3 ls shows the VMS/ prefix; list-objects (v1, v2) answer CommonPrefixes and KeyCount', async () => {
    const tree = join(root, 'upload');
    await mkdir(join(tree, 'VMS', alice.canonicalId), { recursive: true });
    await mkdir(join(tree, 'VMS', 'common'), { recursive: true });
    await writeFile(join(tree, 'VMS', alice.canonicalId, 'alice-img'), 'a small disk image');
    await writeFile(join(tree, 'VMS', 'common', 'public-img'), 'a public disk image');
    await writeFile(join(tree, 'README'), 'read me');
    await s3('s3', 'cp', '--recursive', tree, 's3://Repo/');
    expect(await readFile(cumulus!.objectPath('README'), 'utf8')).toBe('read me'); // stored as sent (no chunk framing)

    const [top, vms, v2Text, v1Text] = await Promise.all([
      s3('s3', 'ls', 's3://Repo/'),
      s3('s3', 'ls', 's3://Repo/VMS/'),
      s3('s3api', 'list-objects-v2', '--bucket', 'Repo', '--delimiter', '/', '--no-paginate'),
      s3('s3api', 'list-objects', '--bucket', 'Repo', '--prefix', 'VMS/', '--delimiter', '/', '--max-keys', '1', '--no-paginate'),
    ]);
    expect(top).toMatch(/^\s+PRE VMS\/$/m);
    expect(top).toMatch(/ README$/m);
    expect(vms.match(/PRE [^\n]+\//g)?.sort()).toEqual([`PRE ${alice.canonicalId}/`, 'PRE common/'].sort());
    const v2 = JSON.parse(v2Text) as Item;
    expect(v2.KeyCount).toBe(2);
    expect(v2.CommonPrefixes).toEqual([{ Prefix: 'VMS/' }]);
    expect(items(v2.Contents).map((c) => c.Key)).toEqual(['README']);
    const v1 = JSON.parse(v1Text) as Item;
    expect(v1.CommonPrefixes).toHaveLength(1);
    expect(v1.IsTruncated).toBe(true);
    expect(v1.NextMarker).toBe((v1.CommonPrefixes as Item[])[0].Prefix);
  });

  it('Cumulus: a file past the CLI\'s 8 MB multipart threshold is refused as Cumulus refuses it, and uploads with one PUT once multipart_threshold is raised', async () => {
    const big = join(root, 'big.img');
    const body = randomBytes(9 * 1024 * 1024);
    await writeFile(big, body);
    const refused = await run(cliEnv(CUMULUS_KEY, CUMULUS_SECRET), ['--endpoint-url', cumulus!.url, 's3', 'cp', big, 's3://Repo/scratch/big.img']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('InvalidArgument');
    expect(refused.stderr).toContain('multipart_threshold');
    // What docs/nimbus.md tells a client to set: `aws configure set default.s3.multipart_threshold 5GB`.
    const env = { ...cliEnv(CUMULUS_KEY, CUMULUS_SECRET), AWS_CONFIG_FILE: join(root, 'home', 'single-put-config') };
    const set = await run(env, ['configure', 'set', 'default.s3.multipart_threshold', '5GB']);
    expect(set.code, set.stderr).toBe(0);
    const ok = await run(env, ['--endpoint-url', cumulus!.url, 's3', 'cp', big, 's3://Repo/scratch/big.img']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(createHash('md5').update(await readFile(cumulus!.objectPath('scratch/big.img'))).digest('hex')).toBe(createHash('md5').update(body).digest('hex'));
  });

  it('zones, regions (the one asked for, or InvalidParameterValue), security groups, images (--owners self: only the caller\'s)', async () => {
    const [zones, regions, badRegion, groups, all, mine, bobs] = await Promise.all([
      ec2(alice, 'describe-availability-zones'),
      ec2(alice, 'describe-regions', '--region-names', 'nimbus'),
      ec2Error(alice, 'describe-regions', '--region-names', 'us-east-1'),
      ec2(alice, 'describe-security-groups'),
      ec2(alice, 'describe-images'),
      ec2(alice, 'describe-images', '--owners', 'self'),
      ec2(bob, 'describe-images', '--owners', 'self'),
    ]);
    expect(items(zones.AvailabilityZones).map((z) => [z.ZoneName, z.RegionName])).toEqual([['default', 'nimbus']]);
    expect(items(regions.Regions).map((r) => r.RegionName)).toEqual(['nimbus']);
    expect(badRegion).toMatch(/InvalidParameterValue.*Invalid region: \[us-east-1\]/);
    expect(items(groups.SecurityGroups)[0]).toMatchObject({ GroupName: 'default', OwnerId: alice.canonicalId });
    expect(items(all.Images).map((i) => i.ImageId).sort()).toEqual(['alice-img', 'public-img']);
    expect(items(mine.Images).map((i) => [i.ImageId, i.OwnerId])).toEqual([['alice-img', alice.canonicalId]]);
    expect(bobs.Images).toEqual([]);
  });

  it('key pairs: create, import (EC2 fingerprint: MD5 of the DER public key), describe, delete', async () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = publicKey.export({ format: 'jwk' });
    const sshString = (b: Buffer) => {
      const l = Buffer.alloc(4);
      l.writeUInt32BE(b.length);
      return Buffer.concat([l, b]);
    };
    const mpint = (b: Buffer) => sshString(b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
    const blob = Buffer.concat([sshString(Buffer.from('ssh-rsa')), mpint(Buffer.from(jwk.e!, 'base64url')), mpint(Buffer.from(jwk.n!, 'base64url'))]);
    const keyFile = join(root, 'laptop.pub');
    await writeFile(keyFile, `ssh-rsa ${blob.toString('base64')} me@laptop\n`);
    const expected = createHash('md5').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').replace(/(..)(?!$)/g, '$1:');

    const [created, imported] = await Promise.all([
      ec2(alice, 'create-key-pair', '--key-name', 'made-here'),
      ec2(alice, 'import-key-pair', '--key-name', 'laptop', '--public-key-material', `fileb://${keyFile}`),
    ]);
    expect(String(created.KeyMaterial)).toContain('BEGIN RSA PRIVATE KEY');
    expect(imported.KeyFingerprint).toBe(expected);
    await ec2(alice, 'delete-key-pair', '--key-name', 'made-here');
    const left = await ec2(alice, 'describe-key-pairs');
    expect(items(left.KeyPairs).map((k) => [k.KeyName, k.KeyFingerprint])).toEqual([['laptop', expected]]);
  });

  let kept = '';
  it('instances: run (configured types only), describe, reboot, terminate', async () => {
    const [badType, run] = await Promise.all([
      ec2Error(alice, 'run-instances', '--image-id', 'alice-img', '--instance-type', 't9.huge', '--count', '1'),
      ec2(alice, 'run-instances', '--image-id', 'alice-img', '--instance-type', 'm1.large', '--key-name', 'laptop', '--count', '2'),
    ]);
    expect(badType).toMatch(/InvalidParameterValue.*Invalid value 't9\.huge' for InstanceType/);
    const [a, b] = items(run.Instances).map((i) => String(i.InstanceId));
    kept = a;
    expect(items(run.Instances)[0]).toMatchObject({ InstanceType: 'm1.large', KeyName: 'laptop', State: { Name: 'pending', Code: 0 } });
    const [rebooted, terminated] = await Promise.all([
      ec2(alice, 'reboot-instances', '--instance-ids', a),
      ec2(alice, 'terminate-instances', '--instance-ids', b),
    ]);
    expect(rebooted).toEqual({});
    expect(items(terminated.TerminatingInstances)[0]).toMatchObject({ InstanceId: b, CurrentState: { Name: 'shutting-down' } });
    const described = await ec2(alice, 'describe-instances', '--instance-ids', a, b);
    const states = items(described.Reservations).flatMap((r) => items(r.Instances)).map((i) => [i.InstanceId, (i.State as Item).Name]);
    expect(states).toContainEqual([b, expect.stringMatching(/^(shutting-down|terminated)$/)]);
    expect(states).toContainEqual([a, expect.stringMatching(/^(pending|running)$/)]);
  });

  it('spot instances: requested, filled from spare capacity at the current price, pre-empted when outbid, cancelled; price history', async () => {
    // Capacity 3; alice's one running on-demand instance leaves 2 spare slots.
    expect(kept).not.toBe('');
    const asked = await ec2(alice, 'request-spot-instances', '--spot-price', '0.5', '--instance-count', '2', '--launch-specification',
      JSON.stringify({ ImageId: 'alice-img', InstanceType: 'm1.small' }));
    const mine = items(asked.SpotInstanceRequests);
    expect(mine.map((r) => [r.State, r.SpotPrice, r.Type, (r.Status as Item).Code])).toEqual([
      ['active', '0.500000', 'one-time', 'fulfilled'],
      ['active', '0.500000', 'one-time', 'fulfilled'],
    ]);
    const spotIds = mine.map((r) => String(r.InstanceId));

    // Bob bids below the price (0.5: both spare slots are taken at that bid): open, price-too-low.
    const [described, lowAnswer] = await Promise.all([
      ec2(alice, 'describe-instances', '--instance-ids', ...spotIds),
      ec2(bob, 'request-spot-instances', '--spot-price', '0.3', '--launch-specification', JSON.stringify({ ImageId: 'public-img' })),
    ]);
    expect(items(described.Reservations).flatMap((r) => items(r.Instances)).map((i) => i.InstanceLifecycle)).toEqual(['spot', 'spot']);
    const low = items(lowAnswer.SpotInstanceRequests)[0];
    expect([low.State, (low.Status as Item).Code]).toEqual(['open', 'price-too-low']);

    // Bob outbids alice: he gets a slot, alice's newer request loses its instance and closes.
    const high = items((await ec2(bob, 'request-spot-instances', '--spot-price', '0.9', '--launch-specification', JSON.stringify({ ImageId: 'public-img' }))).SpotInstanceRequests)[0];
    expect(high.State).toBe('active');
    const [after, historyAnswer, wrongType] = await Promise.all([
      ec2(alice, 'describe-spot-instance-requests'),
      ec2(alice, 'describe-spot-price-history', '--instance-types', 'm1.small'),
      ec2Error(alice, 'request-spot-instances', '--spot-price', '0.5', '--launch-specification', JSON.stringify({ ImageId: 'alice-img', InstanceType: 'm1.large' })),
    ]);
    const states = items(after.SpotInstanceRequests);
    expect(states.map((r) => r.State).sort()).toEqual(['active', 'closed']);
    expect(states.map((r) => (r.Status as Item).Code)).toContain('instance-terminated-by-price');
    const history = items(historyAnswer.SpotPriceHistory);
    expect(history[0]).toMatchObject({ SpotPrice: '0.500000', InstanceType: 'm1.small', ProductDescription: 'Linux/UNIX', AvailabilityZone: 'default' });
    expect(history[history.length - 1]).toMatchObject({ SpotPrice: '0.100000' });
    expect(wrongType).toMatch(/InvalidParameterValue.*spot instances are m1\.small/);

    // Cancelling terminates the request's instance (as Nimbus does); other users cannot see the request.
    const cancelled = items((await ec2(bob, 'cancel-spot-instance-requests', '--spot-instance-request-ids', String(high.SpotInstanceRequestId))).CancelledSpotInstanceRequests);
    expect(cancelled).toEqual([{ SpotInstanceRequestId: high.SpotInstanceRequestId, State: 'cancelled' }]);
    const [gone, notYours] = await Promise.all([
      ec2(bob, 'describe-instances', '--instance-ids', String(high.InstanceId)),
      ec2Error(alice, 'cancel-spot-instance-requests', '--spot-instance-request-ids', String(high.SpotInstanceRequestId)),
    ]);
    expect((items(items(gone.Reservations)[0].Instances)[0].State as Item).Name).toMatch(/^(shutting-down|terminated)$/);
    expect(notYours).toMatch(/InvalidSpotInstanceRequestID\.NotFound/);
  });
});
