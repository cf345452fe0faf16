import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono, type Context } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorInformation } from '@keyhold/protocol';
import { CONSOLE_ASSETS_DIR } from '@keyhold/console';
import type { KbsEnv } from '../app-env.js';
import { renderError } from '../app.js';
import { CONSOLE_CSP, registerConsole } from './serve-console.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-console-'));
  await mkdir(join(dir, 'assets'));
  await writeFile(join(dir, 'index.html'), '<!doctype html><script type="module" src="/console/assets/app-ABCDEFGH.js"></script>');
  await writeFile(join(dir, 'assets', 'app-ABCDEFGH.js'), 'console.log(1)');
  await writeFile(join(dir, 'assets', 'app-ABCDEFGH.css'), 'body{}');
  await writeFile(join(dir, 'assets', 'notes.txt'), 'not served');
  await writeFile(join(dir, 'secret.txt'), 'outside the assets');
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/** An app shaped like createApp's: secure headers, a notFound and onError registered before the console. */
function app(enabled: boolean, assetsDir = dir): Hono<KbsEnv> {
  const a = new Hono<KbsEnv>();
  a.use('*', secureHeaders());
  a.notFound((c) => c.json(errorInformation('InvalidRequestPath', 'no endpoint'), 404));
  a.onError((err, c) => renderError(err, c as Context<KbsEnv>));
  registerConsole(a, { enabled, assetsDir });
  return a;
}

describe('registerConsole', () => {
  it('serves the page at /console and /console/ with a strict CSP, not cached', async () => {
    for (const path of ['/console', '/console/']) {
      const r = await app(true).request(path);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(r.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
      expect(r.headers.get('cache-control')).toBe('no-cache');
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('referrer-policy')).toBe('no-referrer');
      expect(await r.text()).toContain('app-ABCDEFGH.js');
    }
    expect(CONSOLE_CSP).toContain("default-src 'self'");
    expect(CONSOLE_CSP).toContain("frame-ancestors 'none'");
    expect(CONSOLE_CSP).not.toContain('unsafe');
  });

  it('serves hashed assets immutable with their content type, and HEAD without a body', async () => {
    const js = await app(true).request('/console/assets/app-ABCDEFGH.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(js.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(await js.text()).toBe('console.log(1)');
    expect((await app(true).request('/console/assets/app-ABCDEFGH.css')).headers.get('content-type')).toBe('text/css; charset=utf-8');
    const head = await app(true).request('/console/assets/app-ABCDEFGH.js', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('serves nothing else: unknown names, unhashed files, traversal, other paths (404)', async () => {
    for (const path of [
      '/console/assets/notes.txt',
      '/console/assets/app-ZZZZZZZZ.js',
      '/console/assets/..%2Fsecret.txt',
      '/console/assets/%2e%2e%2fsecret.txt',
      '/console/../secret.txt',
      '/console/secret.txt',
      '/console/index.html',
      '/console/assets/',
    ]) {
      const r = await app(true).request(path);
      expect(r.status, path).toBe(404);
      expect(await r.text()).not.toContain('outside the assets');
    }
    expect((await app(true).request('/console', { method: 'POST' })).status).toBe(404);
  });

  it('registers nothing when disabled, and refuses to start enabled without a build', async () => {
    expect((await app(false).request('/console')).status).toBe(404);
    expect((await app(false).request('/console/assets/app-ABCDEFGH.js')).status).toBe(404);
    expect(() => app(true, join(dir, 'missing'))).toThrow(/not built/);
    expect(() => app(false, join(dir, 'missing'))).not.toThrow();
  });

  it('the built console package has an index and hashed assets with no inline script or style', async () => {
    const { readFile, readdir } = await import('node:fs/promises');
    const html = await readFile(join(CONSOLE_ASSETS_DIR, 'index.html'), 'utf8').catch(() => undefined);
    if (html === undefined) return expect.fail(`the console is not built at ${CONSOLE_ASSETS_DIR}: run pnpm run build`);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)|\sstyle=|<style/i);
    const files = await readdir(join(CONSOLE_ASSETS_DIR, 'assets'));
    expect(files.some((f) => /^app-[A-Z0-9]{8}\.js$/.test(f))).toBe(true);
    expect((await app(true, CONSOLE_ASSETS_DIR).request('/console')).status).toBe(200);
  });
});
