import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Context, Hono } from 'hono';
import type { KbsEnv } from '../app-env.js';
import { KbsError } from '../errors.js';

export interface ConsoleOptions {
  /** `[console] enabled` (default true). When false nothing is registered and `/console` is a 404. */
  readonly enabled: boolean;
  /** The built console (`index.html` and `assets/`), e.g. `CONSOLE_ASSETS_DIR` of `@keyhold/console`. */
  readonly assetsDir: string;
}

/**
 * What the console page may do. Everything comes from this origin; no inline script or style (the
 * build emits none, so no hashes are needed), no eval, no plugins, no framing, no <base> or form
 * posts; `connect-src 'self'` limits its API calls (and a stolen page's exfiltration) to this KBS.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "worker-src 'none'",
  "manifest-src 'none'",
].join('; ');

const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), usb=(), payment=(), clipboard-read=()',
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  woff2: 'font/woff2',
};
/** Built asset names carry a content hash (`app-3F2A9C1D.js`), so they can be cached forever. */
const ASSET_NAME = /^[A-Za-z0-9_-]+-[A-Za-z0-9]{8,}\.([a-z0-9]+)$/;
const MAX_ASSET_BYTES = 8 * 1024 * 1024;
const MAX_ASSETS = 200;

interface Asset {
  readonly body: Uint8Array;
  readonly type: string;
}

/** Read the built console once at start: only these files are ever served (no path is joined per request). */
function loadAssets(assetsDir: string): { index: Uint8Array; assets: ReadonlyMap<string, Asset> } {
  let index: Uint8Array;
  try {
    index = readFileSync(join(assetsDir, 'index.html'));
  } catch (cause) {
    throw new TypeError(`the console is enabled but not built (no ${join(assetsDir, 'index.html')}); run pnpm run build, or set [console] enabled = false`, { cause });
  }
  const assets = new Map<string, Asset>();
  const dir = join(assetsDir, 'assets');
  for (const name of readdirSync(dir)) {
    const m = ASSET_NAME.exec(name);
    const type = m?.[1] === undefined ? undefined : CONTENT_TYPES[m[1]];
    if (type === undefined) continue;
    const st = statSync(join(dir, name));
    if (!st.isFile() || st.size > MAX_ASSET_BYTES) throw new TypeError(`console asset ${name} is not a regular file of at most ${MAX_ASSET_BYTES} bytes`);
    if (assets.size >= MAX_ASSETS) throw new TypeError(`the console has more than ${MAX_ASSETS} assets`);
    assets.set(name, { body: readFileSync(join(dir, name)), type });
  }
  return { index, assets };
}

function respond(c: Context<KbsEnv>, body: Uint8Array, type: string, cache: string): Response {
  const headers = new Headers({ ...CONSOLE_HEADERS, 'content-type': type, 'cache-control': cache, 'content-length': String(body.byteLength) });
  return new Response(c.req.method === 'HEAD' ? null : (body as Uint8Array<ArrayBuffer>), { status: 200, headers });
}

/**
 * Serve the owner console at `/console` (the page) and `/console/assets/<hashed name>` (its script,
 * styles and images), each with a strict Content-Security-Policy; nothing else under `/console`.
 * The page itself holds no data: it signs in and calls the admin API like the CLI, so roles and
 * repository limits apply unchanged. Throws TypeError at start when enabled but not built.
 */
export function registerConsole(app: Hono<KbsEnv>, options: ConsoleOptions): void {
  if (!options.enabled) return;
  const { index, assets } = loadAssets(options.assetsDir);
  const page = (c: Context<KbsEnv>): Response => respond(c, index, 'text/html; charset=utf-8', 'no-cache');
  app.get('/console', page);
  app.get('/console/', page);
  app.get('/console/assets/:file', (c) => {
    // SECURITY: only the files read at start are served, looked up by exact name; no request
    // path reaches the file system (path traversal).
    const asset = assets.get(c.req.param('file'));
    if (asset === undefined) throw new KbsError('INVALID_RESOURCE_PATH', 'no such console asset');
    return respond(c, asset.body, asset.type, 'public, max-age=31536000, immutable');
  });
}
