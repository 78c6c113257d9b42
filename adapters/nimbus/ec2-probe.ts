/**
 * Health of the VM service through its own API: a v2-signed DescribeAvailabilityZones, the cheapest call
 * that exercises the frontend, authentication against the user database, and the answer path.
 */
import { runWithTimeout, type Probe } from '../../src/ports.js';
import { tlsExchange, type TlsOptions } from './tls-exchange.js';
import { signedV2Request, type Ec2Credentials, type V2SignatureMethod } from './ec2-sign.js';

export interface Ec2ProbeOptions {
  /** EC2 endpoint URL, e.g. `http://127.0.0.1:8444/`. */
  url: string;
  credentials: Ec2Credentials;
  signatureMethod?: V2SignatureMethod;
  /** HTTPS trust: Nimbus's CA and the head node's hostname (a real 8444 frontend). */
  tls?: TlsOptions;
}

/** 8443 (WSRF services): healthy when a TLS connection with the expected certificate gets any HTTP answer. */
export function httpsReachableProbe(o: { url: string; tls?: TlsOptions }): Probe {
  return (timeoutMs) =>
    runWithTimeout(async (signal) => {
      const res = await tlsExchange(new URL(o.url), o.tls ?? {}, { signal, maxBody: 0 });
      return `${o.url} answered HTTP ${res.status}`;
    }, timeoutMs);
}

function tag(xml: string, name: string): string | undefined {
  return new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
}

export function ec2Probe(o: Ec2ProbeOptions): Probe {
  return (timeoutMs) =>
    runWithTimeout(async (signal) => {
      const { url, init } = signedV2Request({
        endpoint: o.url,
        action: 'DescribeAvailabilityZones',
        credentials: o.credentials,
        signatureMethod: o.signatureMethod,
      });
      const res = await tlsExchange(new URL(url), o.tls ?? {}, { method: init.method, headers: init.headers as Record<string, string> | undefined, body: init.body as string | undefined, signal });
      const body = res.body;
      if (res.status !== 200) {
        const code = tag(body, 'Code') ?? 'no EC2 error code';
        const message = tag(body, 'Message') ?? body.slice(0, 120);
        throw new Error(`EC2 DescribeAvailabilityZones at ${o.url}: HTTP ${res.status} ${code}: ${message}`);
      }
      if (!body.includes('<DescribeAvailabilityZonesResponse')) {
        throw new Error(`EC2 DescribeAvailabilityZones at ${o.url}: HTTP 200 but not an EC2 answer`);
      }
      const zones = body.match(/<zoneName>/g)?.length ?? 0;
      return `EC2 API answered (${zones} zone${zones === 1 ? '' : 's'})`;
    }, timeoutMs);
}
