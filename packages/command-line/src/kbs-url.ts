import { UsageError } from './errors.js';

/**
 * The KBS base URL a user gave (flag or environment), checked: `http://` or `https://`, a host,
 * no query or fragment. A URL without a scheme (`127.0.0.1:8080`, which WHATWG URL would even read
 * as scheme `127.0.0.1:`) is a usage error that shows the fix.
 */
export function parseKbsUrl(text: string, source = '--url'): string {
  const value = text.trim();
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value)) {
    throw new UsageError(`${source} ${JSON.stringify(value.slice(0, 200))} has no scheme`, { hint: `write it as http://${value.replace(/^\/+/, '')} (or https://...)` });
  }
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UsageError(`${source} ${JSON.stringify(value.slice(0, 200))} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`${source} must be an http:// or https:// URL (got ${u.protocol}//)`);
  if (u.search !== '' || u.hash !== '') throw new UsageError(`${source} must not carry a query or fragment`);
  return u.toString().replace(/\/+$/, '');
}
