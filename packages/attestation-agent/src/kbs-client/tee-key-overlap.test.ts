// The tee key is made while the KBS answers /auth (it does not depend on the challenge), and that
// changes nothing else: the key made is the one bound and sent, and a failed /auth or a failed key
// creation is reported as before — against a local HTTP stand-in for the KBS.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KbsClient, type EvidenceRequest } from './kbs-client.js';
import { softwareTeeKeys, type TeeKey, type TeeKeySource } from './tee-key.js';

let server: Server;
let url = '';
const events: string[] = [];
let authStatus = 200;
/** The stand-in answers /auth only once this is true (or after 2 s, so a regression fails instead of hanging). */
let keyMade = false;
let attestBody: Record<string, any> | undefined;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', async () => {
      if (req.url === '/kbs/v0/auth') {
        events.push('auth received');
        for (let waited = 0; !keyMade && waited < 2000; waited += 5) await new Promise((r) => setTimeout(r, 5));
        events.push('auth answered');
        if (authStatus !== 200) {
          res.writeHead(authStatus, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ type: 'https://github.com/confidential-containers/kbs/errors/InvalidRequest', detail: 'no' }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'kbs-session-id=s1; Path=/' });
        res.end(JSON.stringify({ nonce: 'bm9uY2U', 'extra-params': {} }));
        return;
      }
      attestBody = JSON.parse(body);
      const payload = Buffer.from(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: `e30.${payload}.c2ln` }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

/** Software EC keys, recording when each is made. */
function recordingKeys(fail = false): TeeKeySource & { made: TeeKey[] } {
  const inner = softwareTeeKeys('ec');
  const made: TeeKey[] = [];
  return {
    made,
    async create() {
      events.push('tee key made');
      keyMade = true;
      if (fail) throw new Error('no key today');
      const k = await inner.create();
      made.push(k);
      return k;
    },
  };
}

describe('KBS client: the tee key is made while the KBS answers /auth', () => {
  it('is made before the answer to /auth, and is the key bound into the evidence and sent', async () => {
    events.length = 0;
    keyMade = false;
    const keys = recordingKeys();
    const seen: EvidenceRequest[] = [];
    const client = new KbsClient({ url, attester: { tee: 'tpm', evidence: async (req) => (seen.push(req), { primary: {} }) }, teeKeys: keys });
    try {
      await client.attest();
    } finally {
      client.close();
    }
    // Before this change the key came after the answer (the stand-in would have answered after 2 s without one).
    expect(events.filter((e) => e !== 'auth received')).toEqual(['tee key made', 'auth answered']);
    expect(keys.made).toHaveLength(1);
    expect(seen[0]?.teeKey).toBe(keys.made[0]);
    expect(seen[0]?.teePubkey).toEqual(keys.made[0]?.publicJwk);
    expect(attestBody?.['runtime-data']['tee-pubkey']).toEqual(keys.made[0]?.publicJwk);
  });

  it('a refused /auth is reported as before (the key made meanwhile is dropped)', async () => {
    keyMade = false;
    authStatus = 400;
    const client = new KbsClient({ url, attester: { tee: 'tpm', evidence: async () => ({ primary: {} }) }, teeKeys: recordingKeys(true) });
    try {
      // The key creation failed too: the KBS's refusal is what is reported, and nothing is left unhandled.
      await expect(client.attest()).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/\/kbs\/v0\/auth: no/) });
    } finally {
      authStatus = 200;
      client.close();
    }
  });

  it('a failed key creation fails the handshake after /auth, before any evidence', async () => {
    keyMade = false;
    let evidence = 0;
    const client = new KbsClient({ url, attester: { tee: 'tpm', evidence: async () => (evidence++, { primary: {} }) }, teeKeys: recordingKeys(true) });
    try {
      await expect(client.attest()).rejects.toThrow(/no key today/);
    } finally {
      client.close();
    }
    expect(evidence).toBe(0);
  });
});
