import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type * as Https from 'node:https';
import { KbsClientError } from './errors.js';

/** An HTTP answer, body read in full. */
export interface HttpAnswer {
  readonly statusCode: number;
  /** `set-cookie` header lines. */
  readonly setCookie: readonly string[];
  readonly body: string;
}

export interface HttpExchangeOptions {
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  /** Deadline for the whole exchange (connect, send, answer, body). */
  timeoutMs: number;
  /** Largest answer body accepted. */
  maxBodyBytes: number;
  agent: HttpAgent;
  /**
   * Called once the request has been handed to the OS in full (node's `finish`), i.e. while the
   * server works on it: the caller's chance to do work that does not need the answer.
   */
  onSent?: () => void;
}

/**
 * node:https (and node:tls under it), loaded only for an https KBS: a few ms of every start
 * otherwise. Not a dynamic import(), which fails inside the bundled CLI (a vm.Script).
 */
function https(): typeof Https {
  return createRequire(import.meta.url)('node:https') as typeof Https;
}

/**
 * Connection reuse for one client: the three requests of a handshake share one connection, and an
 * idle connection never holds a short-lived CLI process open. `caPem`: the CA bundle trusted for an
 * https KBS (`--cert-file`); node's default CAs otherwise.
 */
export function keepAliveAgent(url: URL, caPem?: string): HttpAgent {
  const opts = { keepAlive: true, maxSockets: 4, scheduling: 'lifo' as const };
  return url.protocol === 'https:' ? new (https().Agent)({ ...opts, ...(caPem !== undefined ? { ca: caPem } : {}) }) : new HttpAgent(opts);
}

/**
 * One HTTP exchange with node:http / node:https, as the KBS protocol needs it: no redirect is
 * followed (a KBS never redirects; following one would carry the session cookie elsewhere), one
 * deadline covers the whole exchange, and the answer body is bounded. Node's built-in transport is
 * used because a CLI started once per image layer key pays the start-up of an HTTP library on every
 * run (undici's request or fetch: ~0.2 s of CPU on the first request, node:http ~0.03 s).
 * Failures to reach the KBS or read its answer are `KBS_UNREACHABLE`; an oversized body `KBS_PROTOCOL`.
 */
export function httpExchange(url: string, opts: HttpExchangeOptions): Promise<HttpAnswer> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? https().request : httpRequest;
  return new Promise<HttpAnswer>((resolve, reject) => {
    let settled = false;
    const fail = (err: KbsClientError): void => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new KbsClientError('KBS_UNREACHABLE', `no answer from the KBS at ${target.origin} within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const req = send(target, { method: opts.method, headers: opts.headers, agent: opts.agent }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        // SECURITY: a hostile or broken KBS cannot make the agent buffer without bound (memory exhaustion).
        if (size > opts.maxBodyBytes) {
          fail(new KbsClientError('KBS_PROTOCOL', `the KBS answer exceeds ${opts.maxBodyBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        const cookies = res.headers['set-cookie'];
        resolve({ statusCode: res.statusCode ?? 0, setCookie: cookies ?? [], body: Buffer.concat(chunks, size).toString('utf8') });
      });
      res.on('error', (cause) => {
        clearTimeout(timer);
        fail(new KbsClientError('KBS_UNREACHABLE', `reading the answer from the KBS at ${target.origin} failed: ${cause.message}`, { cause }));
      });
    });
    if (opts.onSent !== undefined) req.once('finish', opts.onSent);
    req.on('error', (cause) => {
      clearTimeout(timer);
      fail(new KbsClientError('KBS_UNREACHABLE', `cannot reach the KBS at ${target.origin}: ${cause.message}`, { cause }));
    });
    req.end(opts.body);
  });
}
