import { createHash, createPublicKey } from 'node:crypto';

/** Options for a synthetic HCL variable-data JSON (the layout Azure's paravisor writes). */
export interface HclVariableDataOptions {
  /** The vTPM AK (DER SubjectPublicKeyInfo of an RSA key), published as the `HCLAkPub` JWK. */
  readonly akSpkiDer: Uint8Array;
  /** Up to 64 bytes for `user-data` (zero padded, upper-case hex as Azure writes it); default zeros. */
  readonly userData?: Uint8Array;
  readonly vmUniqueId?: string;
  /** Replace the JSON text outright (to test refusals of malformed variable data). */
  readonly rawJson?: string;
}

/** The variable-data bytes (UTF-8 JSON). */
export function hclVariableData(o: HclVariableDataOptions): Uint8Array {
  if (o.rawJson !== undefined) return new Uint8Array(Buffer.from(o.rawJson, 'utf8'));
  const jwk = createPublicKey({ key: Buffer.from(o.akSpkiDer), format: 'der', type: 'spki' }).export({ format: 'jwk' });
  const user = new Uint8Array(64);
  if (o.userData !== undefined) user.set(o.userData.subarray(0, 64));
  const json = {
    keys: [{ kid: 'HCLAkPub', key_ops: ['sign'], kty: 'RSA', e: jwk.e, n: jwk.n }],
    'vm-configuration': { 'console-enabled': true, 'secure-boot': true, 'tpm-enabled': true, vmUniqueId: o.vmUniqueId ?? '00000000-0000-4000-8000-00000000CAFE' },
    'user-data': Buffer.from(user).toString('hex').toUpperCase(),
  };
  return new Uint8Array(Buffer.from(JSON.stringify(json), 'utf8'));
}

/** The first 32 bytes of report_data that bind `variableData` (SHA-256), zero padded to 64. */
export function hclReportData(variableData: Uint8Array): Uint8Array {
  const out = new Uint8Array(64);
  out.set(createHash('sha256').update(variableData).digest());
  return out;
}

export interface HclReportOptions {
  readonly type: 'snp' | 'tdx';
  /** 1184 bytes (SNP) or 1024 bytes (TDX TDREPORT). */
  readonly hardwareReport: Uint8Array;
  readonly variableData: Uint8Array;
  /** IGVM report_data_hash_type; default 1 (SHA-256). */
  readonly hashType?: number;
  /** Pad the report with zeros to this size (Azure's is 2600 bytes); default: no padding. */
  readonly padTo?: number;
}

/** Assemble an HCL report: `HCLA` header ‖ hardware report area (1184) ‖ IGVM request data ‖ variable data. */
export function buildHclReport(o: HclReportOptions): Uint8Array {
  const hwArea = 1184;
  const igvm = 20 + o.variableData.length;
  const size = Math.max(32 + hwArea + igvm, o.padTo ?? 0);
  const r = new Uint8Array(size);
  const v = new DataView(r.buffer);
  r.set(Buffer.from('HCLA', 'latin1'), 0);
  v.setUint32(4, 1, true);
  v.setUint32(8, 32 + hwArea + igvm, true);
  v.setUint32(12, 2, true);
  r.set(o.hardwareReport.subarray(0, hwArea), 32);
  const off = 32 + hwArea;
  v.setUint32(off, igvm, true);
  v.setUint32(off + 4, 1, true);
  v.setUint32(off + 8, o.type === 'snp' ? 2 : 4, true);
  v.setUint32(off + 12, o.hashType ?? 1, true);
  v.setUint32(off + 16, o.variableData.length, true);
  r.set(o.variableData, off + 20);
  return r;
}
