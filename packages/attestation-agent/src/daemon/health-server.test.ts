import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { initialStatus, onAttested, onRefused, type AttestationStatus } from './attestation-status.js';
import { parseHealthListen, startHealthServer } from './health-server.js';

function get(url: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('health endpoint', () => {
  it('answers 200 while attested, 503 once refused or once the token expired, with the status JSON', async () => {
    let now = Date.now();
    let status: AttestationStatus = initialStatus(now);
    const server = await startHealthServer({ host: '127.0.0.1', port: 0 }, () => status, () => now);
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/health$/);
      expect((await get(server.url)).status).toBe(503);
      status = onAttested(status, now, { tokenExpiresAtMs: now + 60_000, nodeId: 'n1' });
      const ok = await get(server.url);
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body)).toMatchObject({ attested: true, state: 'attested', nodeId: 'n1' });
      expect((await get(server.url.replace('/health', '/'))).status).toBe(200);
      expect((await get(server.url, 'HEAD')).status).toBe(200);
      now += 61_000;
      const expired = await get(server.url);
      expect(expired.status).toBe(503);
      expect(JSON.parse(expired.body).attested).toBe(false);
      now -= 61_000;
      status = onRefused(status, now, 'POLICY_DENY: banned (NodeBanned)', true);
      expect(JSON.parse((await get(server.url)).body)).toMatchObject({ attested: false, state: 'banned' });
      expect((await get(server.url.replace('/health', '/secret'))).status).toBe(404);
      expect((await get(server.url, 'POST')).status).toBe(405);
    } finally {
      await server.close();
    }
  });

  it('listens on loopback only', () => {
    expect(parseHealthListen('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseHealthListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseHealthListen('localhost:1')).toEqual({ host: 'localhost', port: 1 });
    for (const bad of ['0.0.0.0:9464', '10.0.0.1:80', '[::]:80', '127.0.0.1', '127.0.0.1:65536', 'example.com:80', ':80']) expect(parseHealthListen(bad), bad).toBeUndefined();
  });
});
