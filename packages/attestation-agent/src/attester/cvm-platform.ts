import { readFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { httpExchange } from '../kbs-client/http-exchange.js';
import { AgentError } from '../errors.js';

/**
 * Where an Azure confidential VM's attester gets what the vTPM does not hold: the chip's VCEK
 * (SEV-SNP) and the TD quote for the TD report in the HCL report (TDX). On Azure both come from the
 * instance metadata service (IMDS), as guest-components / azure-cvm-tooling fetch them. IMDS exists
 * only inside an Azure CVM, so the IMDS implementations cannot run here; tests use the file source.
 */
export interface VcekSource {
  /** The VCEK certificate, DER. */
  vcekDer(): Promise<Uint8Array>;
}

export interface TdQuoteSource {
  /** A TD quote for this TD report (1024-byte TDREPORT). */
  tdQuote(tdReport: Uint8Array): Promise<Uint8Array>;
}

/** Azure IMDS endpoints (az-cvm-vtpm `imds.rs`). */
export const AZURE_IMDS_VCEK_URL = 'http://169.254.169.254/metadata/THIM/amd/certification';
export const AZURE_IMDS_TDQUOTE_URL = 'http://169.254.169.254/acc/tdquote';
/** IMDS answers are a few KiB; anything larger is refused. */
const MAX_IMDS_BYTES = 256 * 1024;
const MAX_VCEK_FILE_BYTES = 64 * 1024;

/** The first certificate of a PEM text, or the bytes as DER. */
export function certificateDer(bytes: Uint8Array): Uint8Array {
  const text = Buffer.from(bytes).toString('latin1');
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(text);
  return m === null ? bytes : new Uint8Array(Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64'));
}

async function imdsJson(url: string, init: { method: 'GET' | 'POST'; body?: string }, timeoutMs: number): Promise<Record<string, unknown>> {
  try {
    const res = await httpExchange(url, {
      method: init.method,
      headers: { Metadata: 'true', ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(init.body !== undefined ? { body: init.body } : {}),
      timeoutMs,
      // SECURITY: a misbehaving endpoint must not make the agent buffer without bound.
      maxBodyBytes: MAX_IMDS_BYTES,
      agent: new Agent({ keepAlive: false }),
    });
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
    const json: unknown = JSON.parse(res.body);
    if (typeof json !== 'object' || json === null) throw new Error('answer is not a JSON object');
    return json as Record<string, unknown>;
  } catch (cause) {
    throw new AgentError('CVM_PLATFORM_UNAVAILABLE', `Azure IMDS ${url}: ${(cause as Error).message}`, { cause });
  }
}

/** The VCEK from Azure IMDS (`vcekCert`, PEM). Only reachable inside an Azure SEV-SNP CVM. */
export class ImdsVcekSource implements VcekSource {
  constructor(private readonly timeoutMs = 10_000) {}
  async vcekDer(): Promise<Uint8Array> {
    const json = await imdsJson(AZURE_IMDS_VCEK_URL, { method: 'GET' }, this.timeoutMs);
    const pem = json['vcekCert'];
    if (typeof pem !== 'string') throw new AgentError('CVM_PLATFORM_UNAVAILABLE', 'Azure IMDS answer has no vcekCert');
    return certificateDer(new Uint8Array(Buffer.from(pem, 'latin1')));
  }
}

/** A VCEK from a file (PEM or DER): for offline use, and the only source a test can drive. */
export class FileVcekSource implements VcekSource {
  constructor(private readonly file: string) {}
  async vcekDer(): Promise<Uint8Array> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.file);
    } catch (cause) {
      throw new AgentError('CONFIG_INVALID', `cannot read VCEK file ${this.file}`, { cause });
    }
    if (bytes.length > MAX_VCEK_FILE_BYTES) throw new AgentError('CONFIG_INVALID', `VCEK file ${this.file} is larger than ${MAX_VCEK_FILE_BYTES} bytes`);
    return certificateDer(new Uint8Array(bytes));
  }
}

/** A TD quote from Azure IMDS (`POST /acc/tdquote {"report": base64url}` → `{"quote": base64url}`). Only inside an Azure TDX CVM. */
export class ImdsTdQuoteSource implements TdQuoteSource {
  constructor(private readonly timeoutMs = 10_000) {}
  async tdQuote(tdReport: Uint8Array): Promise<Uint8Array> {
    const json = await imdsJson(AZURE_IMDS_TDQUOTE_URL, { method: 'POST', body: JSON.stringify({ report: Buffer.from(tdReport).toString('base64url') }) }, this.timeoutMs);
    const quote = json['quote'];
    if (typeof quote !== 'string' || !/^[A-Za-z0-9_-]+={0,2}$/.test(quote)) throw new AgentError('CVM_PLATFORM_UNAVAILABLE', 'Azure IMDS answer has no quote');
    return new Uint8Array(Buffer.from(quote, 'base64url'));
  }
}
