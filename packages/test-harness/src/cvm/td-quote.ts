import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import type { SyntheticIntelPki, SyntheticPck } from './intel-pki.js';

/** Intel's TD QE identity values (public; the synthetic QE report claims them). */
const TD_QE_MRSIGNER = 'dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5';

export interface TdQuoteOptions {
  /** 64 bytes of REPORTDATA (shorter is zero padded). */
  readonly reportData: Uint8Array;
  readonly pck: SyntheticPck;
  readonly teeTcbSvn?: Uint8Array;
  readonly tdAttributes?: Uint8Array;
  readonly mrTd?: Uint8Array;
  readonly qeMrSigner?: string;
  readonly qeIsvProdId?: number;
  readonly qeIsvSvn?: number;
  readonly qeAuthData?: Uint8Array;
  /** When false, the QE report data does not bind the attestation key. */
  readonly bindAttestationKey?: boolean;
  /** Bytes appended after the quote (Azure pads with zeros). */
  readonly trailing?: Uint8Array;
}

const u16 = (v: number): Uint8Array => Uint8Array.of(v & 0xff, v >> 8);
const u32 = (v: number): Uint8Array => Uint8Array.of(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24);
const cat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));

/** Build a TDX v4 quote (ECDSA P-256, QE-report certification data with the PCK chain) signed by a fresh attestation key. */
export function buildTdQuote(o: TdQuoteOptions): Uint8Array {
  const header = cat(u16(4), u16(2), u32(0x81), new Uint8Array(4), Buffer.from('939a7233f79c4ca9940a0db3957f0607', 'hex'), new Uint8Array(20));
  const body = new Uint8Array(584);
  body.set(o.teeTcbSvn ?? Uint8Array.of(2, 1, 6), 0);
  body.set(new Uint8Array(48).fill(0x31), 16);
  body.set(o.tdAttributes ?? new Uint8Array(8), 120);
  body.set(Uint8Array.of(0xe7, 0x18, 0x06), 128);
  body.set(o.mrTd ?? new Uint8Array(48).fill(0x42), 136);
  body.set(o.reportData.subarray(0, 64), 520);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = publicKey.export({ format: 'jwk' });
  const ak = cat(Buffer.from(jwk.x as string, 'base64url'), Buffer.from(jwk.y as string, 'base64url'));
  const signature = sign('sha256', cat(header, body), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const authData = o.qeAuthData ?? Uint8Array.from({ length: 32 }, (_, i) => i);
  const qe = new Uint8Array(384);
  qe.set(Uint8Array.of(6, 6, 19, 21, 3, 0xff, 0, 3), 0);
  qe.set(Buffer.from('1500000000000000e700000000000000', 'hex'), 48);
  qe.set(new Uint8Array(32).fill(0x86), 64);
  qe.set(Buffer.from(o.qeMrSigner ?? TD_QE_MRSIGNER, 'hex'), 128);
  qe.set(u16(o.qeIsvProdId ?? 2), 256);
  qe.set(u16(o.qeIsvSvn ?? 5), 258);
  if (o.bindAttestationKey !== false) qe.set(createHash('sha256').update(ak).update(authData).digest(), 320);
  const qeSig = sign('sha256', qe, { key: o.pck.privateKey, dsaEncoding: 'ieee-p1363' });
  const chain = Buffer.from(`${o.pck.chainPem}\0`, 'latin1');
  const certData = cat(qe, qeSig, u16(authData.length), authData, u16(5), u32(chain.length), chain);
  const sigData = cat(signature, ak, u16(6), u32(certData.length), certData);
  return cat(header, body, u32(sigData.length), sigData, o.trailing ?? new Uint8Array(0));
}

/** A 1024-byte TDREPORT whose REPORTMACSTRUCT.REPORTDATA (offset 128) is `reportData`. */
export function buildTdReport(reportData: Uint8Array): Uint8Array {
  const r = new Uint8Array(1024);
  r[0] = 0x81;
  r.set(reportData.subarray(0, 64), 128);
  return r;
}

export interface TcbLevelSpec {
  readonly sgx: readonly number[];
  readonly pcesvn: number;
  readonly tdx: readonly number[];
  readonly status: string;
}

export interface CollateralOptions {
  readonly fmspc?: string;
  readonly pceId?: string;
  readonly levels: readonly TcbLevelSpec[];
  readonly issueDate: Date;
  readonly nextUpdate: Date;
  /** Add a TD QE identity with these levels (ISVSVN → status). */
  readonly qeLevels?: readonly { isvsvn: number; status: string }[];
  /** Tamper with the signed text after signing. */
  readonly tamper?: boolean;
}

/** Collateral in dcap-qvl's `QuoteCollateralV3` JSON layout, signed by the synthetic TCB signing key. */
export function signedTdxCollateral(pki: SyntheticIntelPki, o: CollateralOptions): Record<string, string> {
  const tcbInfo = JSON.stringify({
    id: 'TDX',
    version: 3,
    issueDate: o.issueDate.toISOString(),
    nextUpdate: o.nextUpdate.toISOString(),
    fmspc: o.fmspc ?? '00806F050000',
    pceId: o.pceId ?? '0000',
    tcbType: 0,
    tcbEvaluationDataNumber: 17,
    tcbLevels: o.levels.map((l) => ({
      tcb: { sgxtcbcomponents: l.sgx.map((svn) => ({ svn })), pcesvn: l.pcesvn, tdxtcbcomponents: l.tdx.map((svn) => ({ svn })) },
      tcbDate: '2024-03-13T00:00:00Z',
      tcbStatus: l.status,
      advisoryIDs: l.status === 'UpToDate' ? [] : ['INTEL-SA-00000'],
    })),
  });
  const out: Record<string, string> = {
    tcb_info_issuer_chain: pki.tcbSigningChainPem,
    // Tampering changes the text after it was signed.
    tcb_info: o.tamper === true ? tcbInfo.replace('"tcbEvaluationDataNumber":17', '"tcbEvaluationDataNumber":18') : tcbInfo,
    tcb_info_signature: pki.signCollateral(tcbInfo),
  };
  if (o.qeLevels !== undefined) {
    const qe = JSON.stringify({
      id: 'TD_QE',
      version: 2,
      issueDate: o.issueDate.toISOString(),
      nextUpdate: o.nextUpdate.toISOString(),
      miscselect: '00000000',
      miscselectMask: 'FFFFFFFF',
      attributes: '11000000000000000000000000000000',
      attributesMask: 'FBFFFFFFFFFFFFFF0000000000000000',
      mrsigner: TD_QE_MRSIGNER.toUpperCase(),
      isvprodid: 2,
      tcbLevels: o.qeLevels.map((l) => ({ tcb: { isvsvn: l.isvsvn }, tcbDate: '2024-03-13T00:00:00Z', tcbStatus: l.status })),
    });
    out['qe_identity_issuer_chain'] = pki.tcbSigningChainPem;
    out['qe_identity'] = qe;
    out['qe_identity_signature'] = pki.signCollateral(qe);
  }
  return out;
}
