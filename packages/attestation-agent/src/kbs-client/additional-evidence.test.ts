// The client's additional evidence: bound into the report data the attester quotes, and sent as
// Trustee's `additional_evidence` — against a local HTTP stand-in for the KBS (the real KBS checks
// the binding in e2e/continuous-attestation.test.ts).
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runtimeDataDigest } from '@keyhold/protocol';
import { KbsClient, type EvidenceRequest } from './kbs-client.js';

let server: Server;
let url = '';
const attestBodies: Record<string, any>[] = [];
let attestStatus = 200;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.url === '/kbs/v0/auth') {
        res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'kbs-session-id=s1; Path=/' });
        res.end(JSON.stringify({ nonce: 'bm9uY2U', 'extra-params': {} }));
        return;
      }
      attestBodies.push(JSON.parse(body));
      if (attestStatus !== 200) {
        res.writeHead(attestStatus, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: 'https://github.com/confidential-containers/kbs/errors/NodeBanned', detail: 'banned: PCR 10' }));
        return;
      }
      const payload = Buffer.from(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: `e30.${payload}.c2ln` }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
});
afterAll(() => new Promise((r) => server.close(r)));

describe('KBS client additional evidence', () => {
  it('is read per handshake, bound into the quoted report data and sent as additional_evidence', async () => {
    const seen: EvidenceRequest[] = [];
    let text = '{"keyhold.node-key":{"spki-sha256":"aa"}}';
    const client = new KbsClient({ url, attester: { tee: 'tpm', evidence: async (req) => (seen.push(req), { primary: {} }) }, additionalEvidence: () => text });
    try {
      await client.attest();
      text = '';
      await client.attest();
    } finally {
      client.close();
    }
    expect(attestBodies.map((b) => b['tee-evidence'].additional_evidence)).toEqual(['{"keyhold.node-key":{"spki-sha256":"aa"}}', '']);
    for (const [i, req] of seen.entries()) {
      const additional = attestBodies[i]?.['tee-evidence'].additional_evidence as string;
      expect(req.additionalEvidence).toBe(additional);
      expect(Buffer.from(req.reportData)).toEqual(Buffer.from(runtimeDataDigest({ nonce: 'bm9uY2U', teePubkey: req.teePubkey, additionalEvidence: additional }, 'sha384')));
    }
  });

  it('keeps the error type tail of a refusal, known variant or not, and forgets the token on request', async () => {
    attestStatus = 200;
    const client = new KbsClient({ url, attester: { tee: 'tpm', evidence: async () => ({ primary: {} }) } });
    try {
      await client.token();
      expect(client.tokenExpiresAtMs).toBeGreaterThan(Date.now());
      client.forgetToken();
      expect(client.tokenExpiresAtMs).toBeUndefined();
      attestStatus = 403;
      await expect(client.attest()).rejects.toMatchObject({ status: 403, errorType: 'NodeBanned', message: expect.stringMatching(/banned: PCR 10 \(NodeBanned\)/) });
    } finally {
      attestStatus = 200;
      client.close();
    }
  });
});
