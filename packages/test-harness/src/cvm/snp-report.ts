import { sign, type KeyObject } from 'node:crypto';
import type { SyntheticTcb } from './amd-chain.js';

/** Fields of a synthetic SEV-SNP ATTESTATION_REPORT (ABI spec 56860 layout). */
export interface SnpReportFields {
  /** 64 bytes (shorter is zero padded). */
  readonly reportData: Uint8Array;
  readonly version?: number;
  readonly vmpl?: number;
  /** Guest policy; default 0x3001f (SMT allowed, ABI 0.31, debug off). */
  readonly policy?: bigint;
  readonly measurement?: Uint8Array;
  readonly hostData?: Uint8Array;
  readonly chipId?: Uint8Array;
  readonly reportedTcb: SyntheticTcb;
  /** Report flags (bits 2-4: signing key; 0 = VCEK). */
  readonly flags?: number;
  readonly signatureAlgo?: number;
  /** Use the Turin TCB layout. */
  readonly turin?: boolean;
}

function tcbBytes(t: SyntheticTcb, turin: boolean): Uint8Array {
  const b = new Uint8Array(8);
  if (turin) {
    b[0] = t.fmc ?? 0;
    b[1] = t.bootloader;
    b[2] = t.tee;
    b[3] = t.snp;
  } else {
    b[0] = t.bootloader;
    b[1] = t.tee;
    b[6] = t.snp;
  }
  b[7] = t.microcode;
  return b;
}

/** Build a 1184-byte SEV-SNP report and sign it with `vcekKey` (ECDSA P-384 SHA-384; r, s little-endian). */
export function buildSnpReport(f: SnpReportFields, vcekKey: KeyObject): Uint8Array {
  const r = new Uint8Array(0x4a0);
  const v = new DataView(r.buffer);
  v.setUint32(0x00, f.version ?? 3, true);
  v.setUint32(0x04, 1, true);
  v.setBigUint64(0x08, f.policy ?? 0x3001fn, true);
  v.setUint32(0x30, f.vmpl ?? 0, true);
  v.setUint32(0x34, f.signatureAlgo ?? 1, true);
  const tcb = tcbBytes(f.reportedTcb, f.turin === true);
  r.set(tcb, 0x38);
  v.setBigUint64(0x40, 0x25n, true);
  v.setUint32(0x48, f.flags ?? 0, true);
  r.set(f.reportData.subarray(0, 64), 0x50);
  r.set((f.measurement ?? new Uint8Array(48).fill(0x11)).subarray(0, 48), 0x90);
  if (f.hostData !== undefined) r.set(f.hostData.subarray(0, 32), 0xc0);
  r.set(new Uint8Array(32).fill(0x22), 0x140);
  r.set(new Uint8Array(32).fill(0xff), 0x160);
  r.set(tcb, 0x180);
  r[0x188] = 0x19;
  r[0x189] = 0x01;
  r[0x18a] = 0x01;
  r.set((f.chipId ?? new Uint8Array(64).fill(0x5a)).subarray(0, 64), 0x1a0);
  r.set(tcb, 0x1e0);
  r.set([29, 55, 1], 0x1e8);
  r.set([29, 55, 1], 0x1ec);
  r.set(tcb, 0x1f0);
  const sig = sign('sha384', r.subarray(0, 0x2a0), { key: vcekKey, dsaEncoding: 'ieee-p1363' });
  r.set(Uint8Array.from(sig.subarray(0, 48)).reverse(), 0x2a0);
  r.set(Uint8Array.from(sig.subarray(48, 96)).reverse(), 0x2a0 + 72);
  return r;
}
