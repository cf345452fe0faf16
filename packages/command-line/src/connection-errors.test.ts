import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { explainConnectionError, speaksTls } from './connection-errors.js';

// Real servers on loopback: a plain HTTP one and an HTTPS one with a self-signed certificate made
// by openssl, so the errors explained are the ones node/undici really produce.
let dir: string;
let plain: Server;
let tls: Server;
let plainUrl: string;
let tlsUrl: string;
let freePort: number;

const listen = (s: Server): Promise<number> => new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'keyhold-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  plain = createHttpServer((_q, r) => r.end('plain'));
  tls = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_q, r) => r.end('tls'));
  plainUrl = `http://127.0.0.1:${await listen(plain)}`;
  tlsUrl = `https://127.0.0.1:${await listen(tls)}`;
  const probe = createHttpServer();
  freePort = await listen(probe);
  await new Promise((r) => probe.close(r));
});

afterAll(async () => {
  await new Promise((r) => plain.close(r));
  await new Promise((r) => tls.close(r));
  rmSync(dir, { recursive: true, force: true });
});

async function failure(url: string): Promise<unknown> {
  try {
    await fetch(url);
  } catch (err) {
    return err;
  }
  throw new Error(`${url} did not fail`);
}

describe('explainConnectionError', () => {
  it('https:// against a plain-HTTP server says so (not "wrong version number")', async () => {
    const url = plainUrl.replace('http:', 'https:');
    const e = await explainConnectionError(url, await failure(url));
    expect(e.code).toBe('KBS_TLS_MISMATCH');
    expect(e.message).toBe(`the KBS at ${url.slice('https://'.length)} answers plain HTTP, not HTTPS`);
    expect(e.hint).toMatch(/^use http:\/\/127\.0\.0\.1:\d+/);
    expect(e.message).not.toMatch(/version number/);
  });

  it('http:// against a TLS server says so (found by a TLS probe after the failure)', async () => {
    const url = tlsUrl.replace('https:', 'http:');
    const e = await explainConnectionError(url, await failure(url));
    expect(e.code).toBe('KBS_TLS_MISMATCH');
    expect(e.message).toMatch(/speaks HTTPS, not plain HTTP$/);
    expect(e.hint).toMatch(/^use https:\/\/127\.0\.0\.1:\d+ \(and --cert-file/);
  });

  it('an untrusted certificate points at --cert-file', async () => {
    const e = await explainConnectionError(tlsUrl, await failure(tlsUrl));
    expect(e.code).toBe('KBS_CERT_UNTRUSTED');
    expect(e.message).toMatch(/is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
    expect(e.hint).toMatch(/--cert-file/);
  });

  it('nothing listening: says so and what to check', async () => {
    const url = `http://127.0.0.1:${freePort}`;
    const e = await explainConnectionError(url, await failure(url));
    expect(e.code).toBe('KBS_UNREACHABLE');
    expect(e.message).toBe(`nothing listens at 127.0.0.1:${freePort}`);
    expect(e.hint).toMatch(/keyhold-kbs/);
  });

  it('speaksTls tells a TLS server from a plain one', async () => {
    expect(await speaksTls('127.0.0.1', Number(new URL(tlsUrl).port))).toBe(true);
    expect(await speaksTls('127.0.0.1', Number(new URL(plainUrl).port), 1000)).toBe(false);
  });
});
