/**
 * A throwaway TLS PKI made with the openssl command line (as the README tells operators to): a CA,
 * a server certificate for localhost / 127.0.0.1 / ::1 signed by it, and on request a second CA with
 * a client certificate (mutual TLS for the admin API). For tests and the main job only: keys are
 * unencrypted files in `dir` (0600) and the certificates live for a few days.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type TlsKeyType = 'ec' | 'rsa';

export interface TlsPki {
  readonly dir: string;
  /** The CA clients trust (`--cert-file`, `KEYHOLD_KBS_CA`). */
  readonly caFile: string;
  readonly caPem: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
}

export interface ClientPki {
  /** The CA the KBS trusts for admin clients (`[admin] client_ca`). */
  readonly clientCaFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  readonly clientCertPem: string;
  readonly clientKeyPem: string;
}

function keyArgs(type: TlsKeyType): string[] {
  return type === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
}

async function openssl(args: string[]): Promise<void> {
  await run('openssl', args, { timeout: 30_000 });
}

/** A self-signed CA: `name`.pem and `name`.key.pem in dir. */
async function makeCa(dir: string, name: string, cn: string, type: TlsKeyType): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key.pem`);
  await openssl([
    'req', '-x509', ...keyArgs(type), '-nodes', '-days', '3', '-subj', `/CN=${cn}`, '-keyout', key, '-out', cert,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { cert, key };
}

/** A leaf signed by `ca`, with the given extensions (an openssl extfile's lines). */
async function makeLeaf(dir: string, name: string, cn: string, ca: { cert: string; key: string }, ext: string[], type: TlsKeyType): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key.pem`);
  const csr = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  await writeFile(extFile, `${ext.join('\n')}\n`);
  await openssl(['req', ...keyArgs(type), '-nodes', '-subj', `/CN=${cn}`, '-keyout', key, '-out', csr]);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '3', '-extfile', extFile, '-out', cert]);
  return { cert, key };
}

/** A CA and a server certificate for the loopback names (and `hosts`: names or IP addresses), in `dir` (created). */
export async function createTlsPki(dir: string, opts: { keyType?: TlsKeyType; name?: string; hosts?: readonly string[] } = {}): Promise<TlsPki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const type = opts.keyType ?? 'ec';
  const prefix = opts.name ?? 'kbs';
  const ca = await makeCa(dir, `${prefix}-ca`, `Keyhold throwaway CA (${prefix})`, type);
  const server = await makeLeaf(
    dir,
    `${prefix}-server`,
    'localhost',
    ca,
    ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth', `subjectAltName=${subjectAltNames(opts.hosts ?? []).join(',')}`],
    type,
  );
  return { dir, caFile: ca.cert, caPem: await readFile(ca.cert, 'utf8'), serverCertFile: server.cert, serverKeyFile: server.key };
}

function subjectAltNames(hosts: readonly string[]): string[] {
  const names = new Set(['DNS:localhost', 'IP:127.0.0.1', 'IP:::1']);
  for (const h of hosts) {
    const bare = h.replace(/^\[(.*)\]$/, '$1');
    if (bare === '' || bare === '0.0.0.0' || bare === '::') continue;
    names.add(isIP(bare) !== 0 ? `IP:${bare}` : `DNS:${bare}`);
  }
  return [...names];
}

/** A client CA (for `[admin] client_ca`) and one client certificate it issued. */
export async function createClientPki(dir: string, opts: { name?: string; keyType?: TlsKeyType } = {}): Promise<ClientPki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const prefix = opts.name ?? 'admin';
  const type = opts.keyType ?? 'ec';
  const ca = await makeCa(dir, `${prefix}-client-ca`, `Keyhold admin client CA (${prefix})`, type);
  const client = await makeLeaf(dir, `${prefix}-client`, `${prefix} operator`, ca, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'], type);
  return {
    clientCaFile: ca.cert,
    clientCertFile: client.cert,
    clientKeyFile: client.key,
    clientCertPem: await readFile(client.cert, 'utf8'),
    clientKeyPem: await readFile(client.key, 'utf8'),
  };
}

/** The `[http_server]` TOML lines for a PKI (paths quoted as TOML strings). */
export function httpServerToml(pki: Pick<TlsPki, 'serverCertFile' | 'serverKeyFile'>, extra: Record<string, number | boolean> = {}): string {
  const lines = ['[http_server]', `certificate = ${JSON.stringify(pki.serverCertFile)}`, `private_key = ${JSON.stringify(pki.serverKeyFile)}`];
  for (const [k, v] of Object.entries(extra)) lines.push(`${k} = ${String(v)}`);
  return `${lines.join('\n')}\n`;
}
