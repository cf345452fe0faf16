// CycleSession's resource path: the grant client is a real KbsClient fetching from a stand-in KBS
// (an HTTP server on loopback that answers the resource route with a JWE made by jose for the tee
// key the token binds, or 401/403); the TPM session is a stand-in that counts opens and closes. The
// real KBS and TPM are covered by e2e/resident-agent.test.ts.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FlattenedEncrypt, importJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KbsClient, ResourceGrant } from '../kbs-client/kbs-client.js';
import { softwareTeeKeys } from '../kbs-client/tee-key.js';
import type { NodeSession } from '../node-session.js';
import type { AgentConfig } from '../config.js';
import { CycleSession, openGrantClient } from './cycle-session.js';

const R = { repository: 'default', type: 'key', tag: 'k1' };
/** token → the tee public key it binds; tokens not here get 401. */
const issued = new Map<string, ResourceGrant>();
const seen: string[] = [];
let denyPolicy = false;
let kbs: Server;
let url: string;
beforeAll(async () => {
  kbs = createServer((req, res) => {
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    seen.push(`${req.url} ${token}`);
    const grant = issued.get(token);
    if (grant === undefined) return void res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'https://github.com/confidential-containers/kbs/errors/TokenNotFound', detail: 'token refused' }));
    if (denyPolicy) return void res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'https://github.com/confidential-containers/kbs/errors/PolicyDeny', detail: 'denied' }));
    const alg = 'ECDH-ES+A256KW';
    void importJWK({ ...grant.teeKey.publicJwk, alg }, alg)
      .then((key) => new FlattenedEncrypt(Buffer.from(`granted:${req.url}`)).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(key))
      .then((jwe) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwe)));
  });
  await new Promise<void>((r) => kbs.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(kbs.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => kbs.close(r)));

let tokens = 0;
async function newGrant(): Promise<ResourceGrant> {
  const token = `token-${++tokens}`;
  const grant = { token, expMs: Date.now() + 300_000, teeKey: await softwareTeeKeys('ec').create() };
  issued.set(token, grant);
  return grant;
}

/** Stand-in TPM sessions: each attests once (a new grant) when asked for a resource without one. */
function sessions() {
  const counts = { open: 0, close: 0, attest: 0, fetch: 0 };
  const open = async (): Promise<NodeSession> => {
    counts.open++;
    let grant: ResourceGrant | undefined;
    const attest = async () => {
      counts.attest++;
      grant = await newGrant();
      return grant.token;
    };
    const client = {
      attest,
      async getResource(path: typeof R) {
        counts.fetch++;
        if (grant === undefined) await attest();
        return new Uint8Array(Buffer.from(`session:${path.tag}`));
      },
      grant: () => grant,
      forgetToken: () => (grant = undefined),
      close: () => undefined,
    };
    return { client: client as unknown as KbsClient, close: async () => void counts.close++ } as unknown as NodeSession;
  };
  return { open, counts };
}

async function grantClient(): Promise<KbsClient> {
  return openGrantClient({ url, timeoutMs: 5000 } as AgentConfig);
}
const text = (b: Uint8Array) => Buffer.from(b).toString();

describe('CycleSession resources', () => {
  it('attests through the TPM session once, then fetches with the grant without opening the TPM', async () => {
    const s = sessions();
    const cycles = new CycleSession(s.open, undefined, { grantClient: await grantClient() });
    expect(text(await cycles.getResource(R))).toBe('session:k1');
    expect(s.counts).toMatchObject({ open: 1, close: 1, attest: 1 });
    const token = `token-${tokens}`;
    seen.length = 0;
    expect(text(await cycles.getResource(R))).toBe('granted:/kbs/v0/resource/default/key/k1');
    expect(text(await cycles.getResource(R, { version: 3 }))).toBe('granted:/kbs/v0/resource/default/key/k1?version=3');
    expect(s.counts).toMatchObject({ open: 1, close: 1, attest: 1 });
    expect(seen).toEqual([`/kbs/v0/resource/default/key/k1 ${token}`, `/kbs/v0/resource/default/key/k1?version=3 ${token}`]);
  });

  it('attests again through the session when the KBS no longer takes the grant (401), and keeps the new one', async () => {
    const s = sessions();
    const cycles = new CycleSession(s.open, undefined, { grantClient: await grantClient() });
    await cycles.getResource(R);
    issued.delete(`token-${tokens}`);
    expect(text(await cycles.getResource(R))).toBe('session:k1');
    expect(s.counts).toMatchObject({ open: 2, close: 2, attest: 2 });
    expect(text(await cycles.getResource(R))).toBe('granted:/kbs/v0/resource/default/key/k1');
    expect(s.counts.open).toBe(2);
  });

  it('passes a refusal that is not about the token (403) to the caller without attesting', async () => {
    const s = sessions();
    const cycles = new CycleSession(s.open, undefined, { grantClient: await grantClient() });
    await cycles.getResource(R);
    denyPolicy = true;
    try {
      await expect(cycles.getResource(R)).rejects.toMatchObject({ code: 'POLICY_DENY', status: 403 });
    } finally {
      denyPolicy = false;
    }
    expect(s.counts).toMatchObject({ open: 1, attest: 1 });
  });

  it('uses the session a cycle holds, and closes it only when the cycle and the requests are done', async () => {
    const s = sessions();
    const cycles = new CycleSession(s.open, undefined, { grantClient: await grantClient() });
    await cycles.attest();
    expect(text(await cycles.getResource(R))).toBe('session:k1');
    expect(s.counts).toMatchObject({ open: 1, close: 0, fetch: 1 });
    await cycles.release();
    expect(s.counts.close).toBe(1);
    // The cycle's attestation is the grant now.
    expect(text(await cycles.getResource(R))).toBe('granted:/kbs/v0/resource/default/key/k1');
    expect(s.counts.open).toBe(1);
  });

  it('forgets the grant when the KBS refused the node (forgetToken), so the next request attests', async () => {
    const s = sessions();
    const cycles = new CycleSession(s.open, undefined, { grantClient: await grantClient() });
    await cycles.getResource(R);
    cycles.forgetToken();
    expect(text(await cycles.getResource(R))).toBe('session:k1');
    expect(s.counts).toMatchObject({ open: 2, attest: 2 });
  });

  it('shutdown waits for the requests using the session, then closes it', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = sessions();
    const open = async (): Promise<NodeSession> => {
      const session = await s.open();
      const client = session.client as unknown as { getResource: (p: typeof R) => Promise<Uint8Array> };
      const inner = client.getResource.bind(client);
      client.getResource = async (p) => {
        await gate;
        return inner(p);
      };
      return session;
    };
    const cycles = new CycleSession(open);
    const pending = cycles.getResource(R);
    await new Promise((r) => setTimeout(r, 20));
    let closed = false;
    const down = cycles.shutdown().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 20));
    expect([closed, s.counts.close]).toEqual([false, 0]);
    release();
    expect(text(await pending)).toBe('session:k1');
    await down;
    expect(s.counts).toMatchObject({ open: 1, close: 1 });
  });

  it('without a grant client every request goes through the TPM session', async () => {
    const s = sessions();
    const cycles = new CycleSession(s.open);
    await cycles.getResource(R);
    await cycles.getResource(R);
    expect(s.counts).toMatchObject({ open: 2, close: 2, fetch: 2 });
  });
});
