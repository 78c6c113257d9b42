import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { HaError } from '../errors.js';

/**
 * TLS between the nodes and the witness (config `tls: { cert, key, ca }`, witness `--tls-*`).
 *
 * - Servers (the node API, the witness) present `cert` and ask every client for a certificate. The
 *   handshake itself does not refuse a client without one (load balancers, Prometheus and operators
 *   reach `/health`, `/status`, `/metrics` and `/admin` without a client certificate), but every
 *   `/peer/*` and `/witness/*` request must come with a client certificate that verifies against `ca`
 *   and whose subject CN is the node that signed the request:
 *   checked before the signature and before any body is read (src/peer/auth.ts).
 * - Clients (PeerClient) present `cert`, trust only `ca` for https peer and witness URLs (and check
 *   that the server's certificate names the host of the URL), and refuse plain http:// URLs.
 */
export interface TlsFiles {
  /** PEM certificate of this process (node or witness), signed by `ca`. */
  cert: string;
  /** PEM private key of `cert`; a file only its owner can read (mode 0600 or 0400). */
  key: string;
  /** PEM certificate(s) of the cluster CA; more than one while a CA is being replaced. */
  ca: string;
}

/** What a server and a client need, read once from the files. */
export interface TlsMaterial {
  files: TlsFiles;
  cert: string;
  key: string;
  ca: string;
  /** Names in this process's own certificate (subject CN first, then DNS SANs). */
  names: string[];
  notAfter: Date;
}

export interface TlsProblem {
  /** `cert`, `key` or `ca` (the caller prefixes its own key: `tls.cert`, `--tls-cert`). */
  field: keyof TlsFiles;
  problem: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every PEM certificate in `text`, parsed (throws on a malformed one). */
export function parseCertificates(text: string): X509Certificate[] {
  return (text.match(PEM_CERT) ?? []).map((pem) => new X509Certificate(pem));
}

/** The subject CN and DNS subject-alternative names of a certificate. */
export function certificateNames(subject: string | undefined, subjectAltName: string | undefined): string[] {
  const names: string[] = [];
  const cn = /(?:^|\n|,\s*)CN=([^\n,]+)/.exec(subject ?? '');
  if (cn) names.push(cn[1].trim());
  for (const part of (subjectAltName ?? '').split(/,\s*/)) if (part.startsWith('DNS:')) names.push(part.slice(4));
  return [...new Set(names)];
}

function readText(file: string, what: string): { text: string } | { problem: string } {
  try {
    return { text: readFileSync(file, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return { problem: `cannot read ${file}: ${code} (expected ${what} readable by the user running nimbus-ha)` };
  }
}

/**
 * Check the three files as a set: readable, PEM of the right kind, the key only readable by its owner
 * and matching the certificate, the certificate signed by one of the CA certificates and valid now.
 * Returns every problem found, each for the file it concerns.
 */
export function tlsFileProblems(files: TlsFiles, nowMs = Date.now()): { problems: TlsProblem[]; material?: TlsMaterial } {
  const problems: TlsProblem[] = [];
  let cert: X509Certificate | null = null;
  let certText = '';
  const c = readText(files.cert, 'a PEM certificate file');
  if ('problem' in c) problems.push({ field: 'cert', problem: c.problem });
  else {
    try {
      cert = parseCertificates(c.text)[0] ?? null;
      if (!cert) problems.push({ field: 'cert', problem: `${files.cert} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----; create one with \`nimbus-ha certs init\`)` });
      certText = c.text;
    } catch (err) {
      problems.push({ field: 'cert', problem: `${files.cert} is not a valid PEM certificate: ${(err as Error).message}` });
    }
  }
  let key: KeyObject | null = null;
  let keyText = '';
  const k = readText(files.key, 'a PEM private key file');
  if ('problem' in k) problems.push({ field: 'key', problem: k.problem });
  else {
    const st = statSync(files.key);
    const uid = typeof process.getuid === 'function' ? process.getuid() : null;
    if (!st.isFile()) problems.push({ field: 'key', problem: `${files.key} is not a regular file (expected the private key, mode 0600)` });
    else if ((st.mode & 0o077) !== 0) {
      problems.push({ field: 'key', problem: `${files.key} is readable or writable by group or others (mode 0${(st.mode & 0o777).toString(8)}; expected mode 0600: chmod 600 ${files.key})` });
    } else if (uid !== null && st.uid !== uid) {
      problems.push({ field: 'key', problem: `${files.key} is owned by uid ${st.uid}, not by the user running nimbus-ha (uid ${uid}) (expected a file owned by that user, mode 0600)` });
    } else {
      try {
        key = createPrivateKey(k.text);
        keyText = k.text;
      } catch (err) {
        problems.push({ field: 'key', problem: `${files.key} is not a PEM private key: ${(err as Error).message} (expected an unencrypted PEM key)` });
      }
    }
  }
  let cas: X509Certificate[] = [];
  let caText = '';
  const a = readText(files.ca, 'a PEM CA certificate file');
  if ('problem' in a) problems.push({ field: 'ca', problem: a.problem });
  else {
    try {
      cas = parseCertificates(a.text);
      caText = a.text;
      if (cas.length === 0) problems.push({ field: 'ca', problem: `${files.ca} holds no PEM certificate (expected the cluster CA certificate, -----BEGIN CERTIFICATE-----)` });
      else if (!cas.some((x) => x.ca)) problems.push({ field: 'ca', problem: `${files.ca} holds no CA certificate (expected a certificate with basicConstraints CA:TRUE, such as ca.crt of \`nimbus-ha certs init\`)` });
    } catch (err) {
      problems.push({ field: 'ca', problem: `${files.ca} is not a valid PEM certificate: ${(err as Error).message}` });
    }
  }
  if (cert && key && !cert.checkPrivateKey(key)) {
    problems.push({ field: 'key', problem: `${files.key} is not the private key of ${files.cert} (expected the key the certificate was issued for)` });
  }
  if (cert && cas.length && !cas.some((x) => x.ca && cert!.checkIssued(x) && cert!.verify(x.publicKey))) {
    problems.push({ field: 'cert', problem: `${files.cert} is not signed by the CA in ${files.ca} (expected a certificate issued by tls.ca: every node and the witness must use the same CA)` });
  }
  if (cert) {
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    if (Number.isFinite(to) && to <= nowMs) problems.push({ field: 'cert', problem: `${files.cert} expired on ${cert.validTo} (expected a current certificate; see "Rotating certificates" in docs/security.md)` });
    else if (Number.isFinite(from) && from > nowMs + 5 * 60_000) problems.push({ field: 'cert', problem: `${files.cert} is valid only from ${cert.validFrom} (check the clock)` });
  }
  if (problems.length || !cert) return { problems };
  return {
    problems,
    material: { files: { ...files }, cert: certText, key: keyText, ca: caText, names: certificateNames(cert.subject, cert.subjectAltName), notAfter: new Date(cert.validTo) },
  };
}

/** Read and check the files; throws CONFIG_INVALID naming each bad one as `<prefix><field>`. */
export function loadTls(files: TlsFiles, keyPrefix = 'tls.'): TlsMaterial {
  const r = tlsFileProblems(files);
  if (!r.material) {
    throw new HaError('CONFIG_INVALID', `invalid TLS files:\n${r.problems.map((p) => `  ${keyPrefix}${p.field}: ${p.problem}`).join('\n')}`, {
      problems: r.problems.map((p) => ({ key: `${keyPrefix}${p.field}`, problem: p.problem })),
    });
  }
  return r.material;
}

/**
 * Why the client certificate on this TLS connection does not authenticate `node` (null when it does):
 * it must verify against the server's CA and its subject CN must be the node's name (not a DNS
 * subject-alternative name: every certificate of `certs init` also names localhost).
 */
export function clientCertProblem(socket: TLSSocket, node: string | undefined): string | null {
  if (!socket.authorized) {
    const peer = socket.getPeerCertificate();
    if (!peer || Object.keys(peer).length === 0) return 'no client certificate (expected the node certificate of tls.cert, issued by the cluster CA)';
    return `client certificate not accepted: ${String(socket.authorizationError ?? 'not signed by the cluster CA')} (expected one issued by tls.ca)`;
  }
  const cn = socket.getPeerCertificate().subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  if (!node || name !== node) return `client certificate names ${name ?? 'nobody'} (subject CN), not the signing node ${node ?? '(none)'} (expected the certificate issued for that node)`;
  return null;
}

/** Whether a request's socket is a TLS connection (the node API or the witness serving https). */
export function tlsSocketOf(socket: unknown): TLSSocket | null {
  return socket && typeof socket === 'object' && (socket as { encrypted?: boolean }).encrypted === true ? (socket as TLSSocket) : null;
}
