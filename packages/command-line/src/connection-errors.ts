import { createRequire } from 'node:module';
import type * as Tls from 'node:tls';
import { CliError } from './errors.js';

const CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
/** OpenSSL's answers when a TLS client meets a plain-HTTP server. */
const NOT_TLS_CODES = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST', 'EPROTO']);

function causes(err: unknown): { code?: string; message?: string }[] {
  const out: { code?: string; message?: string }[] = [];
  let e: unknown = err;
  for (let i = 0; i < 5 && e !== undefined && e !== null && typeof e === 'object'; i++) {
    out.push(e as { code?: string; message?: string });
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

/** Whether something at host:port completes a TLS handshake (any certificate), within `timeoutMs`. */
export async function speaksTls(host: string, port: number, timeoutMs = 2000): Promise<boolean> {
  // node:tls is required here, only after a failure: loading it costs every CLI start a few ms. Not
  // a dynamic import(), which fails inside the agent's bundle (a vm.Script with a code cache: "A
  // dynamic import callback was not specified").
  const { connect: tlsConnect } = createRequire(import.meta.url)('node:tls') as typeof Tls;
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, ...(/^[\d.:]+$/.test(host) ? {} : { servername: host }) });
    const done = (v: boolean): void => {
      socket.destroy();
      resolve(v);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Why a request to the KBS at `url` failed before any HTTP answer, as one line that says what to
 * do: an https URL against a plain-HTTP server (instead of OpenSSL's "wrong version number"), an
 * http URL against a TLS server (found by a short TLS probe, only after the failure), an untrusted
 * certificate (→ --cert-file), nothing listening, an unknown host, a timeout.
 */
export async function explainConnectionError(url: string, err: unknown): Promise<CliError> {
  const u = new URL(url);
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const where = `${u.hostname}:${port}`;
  const chain = causes(err);
  const codes = chain.map((c) => c.code).filter((c): c is string => typeof c === 'string');
  const text = chain.map((c) => c.message ?? '').join(' ');
  const make = (code: string, message: string, hint?: string): CliError => new CliError(code, message, { cause: err, ...(hint !== undefined ? { hint } : {}) });

  if (u.protocol === 'https:' && (codes.some((c) => NOT_TLS_CODES.has(c)) || /wrong version number|packet length too long|http request/i.test(text))) {
    return make('KBS_TLS_MISMATCH', `the KBS at ${where} answers plain HTTP, not HTTPS`, `use http://${where}${u.pathname === '/' ? '' : u.pathname} (keyhold-kbs serves HTTPS only when configured with a certificate)`);
  }
  const certCode = codes.find((c) => CERT_CODES.has(c));
  if (u.protocol === 'https:' && certCode !== undefined) {
    return make('KBS_CERT_UNTRUSTED', `the KBS certificate at ${where} is not trusted (${certCode})`, "give the CA that signed it with --cert-file FILE.pem (env KEYHOLD_KBS_CA)");
  }
  if (codes.includes('ECONNREFUSED')) return make('KBS_UNREACHABLE', `nothing listens at ${where}`, 'is keyhold-kbs running there? (keyhold-kbs serve --listen HOST:PORT); check --url / KEYHOLD_KBS_URL');
  if (codes.includes('ENOTFOUND') || codes.includes('EAI_AGAIN')) return make('KBS_UNREACHABLE', `cannot resolve the KBS host ${u.hostname}`, 'check --url / KEYHOLD_KBS_URL');
  if (codes.some((c) => c === 'UND_ERR_CONNECT_TIMEOUT' || c === 'UND_ERR_HEADERS_TIMEOUT' || c === 'ETIMEDOUT')) return make('KBS_UNREACHABLE', `the KBS at ${where} did not answer in time`);
  if (u.protocol === 'http:' && codes.some((c) => c === 'UND_ERR_SOCKET' || c === 'ECONNRESET') && (await speaksTls(u.hostname, port))) {
    return make('KBS_TLS_MISMATCH', `the KBS at ${where} speaks HTTPS, not plain HTTP`, `use https://${where}${u.pathname === '/' ? '' : u.pathname} (and --cert-file CA.pem when its certificate is not publicly trusted)`);
  }
  const first = chain[chain.length - 1]?.message ?? String(err);
  return make('KBS_UNREACHABLE', `cannot reach the KBS at ${url}: ${first}`);
}
