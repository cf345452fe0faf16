import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TPM_ALG } from './internal/tpm-alg.js';
import { parseTpm2bPublic } from '@keyhold/verifier';
import {
  EK_AUTH_POLICY,
  EK_HIGH_RANGE_POLICY_SHA384,
  EK_POLICY_A_SHA384,
  EK_POLICY_C_SHA384,
  akTemplate,
  ekAlgOfPublic,
  ekPolicyOf,
  ekTemplate,
} from './templates.js';

const TPM_CC_POLICY_SECRET = 0x151;
const TPM_CC_POLICY_OR = 0x171;
const TPM_RH_ENDORSEMENT = 0x4000000b;

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** Policy digest arithmetic of TPM 2.0 Part 3, 23.4 (PolicySecret) and 23.6 (PolicyOR), in software. */
function policySecretDigest(hash: 'sha256' | 'sha384'): Buffer {
  const size = createHash(hash).digest().length;
  const step = createHash(hash).update(Buffer.alloc(size)).update(u32(TPM_CC_POLICY_SECRET)).update(u32(TPM_RH_ENDORSEMENT)).digest();
  return createHash(hash).update(step).digest(); // policyRef: empty
}

describe('EK templates', () => {
  it('carries the policy digests the TCG profile defines, as recomputed here', () => {
    expect(policySecretDigest('sha256')).toEqual(Buffer.from(EK_AUTH_POLICY));
    expect(policySecretDigest('sha384')).toEqual(Buffer.from(EK_POLICY_A_SHA384));
    const policyB = createHash('sha384').update(Buffer.alloc(48)).update(u32(TPM_CC_POLICY_OR)).update(EK_POLICY_A_SHA384).update(EK_POLICY_C_SHA384).digest();
    expect(policyB).toEqual(Buffer.from(EK_HIGH_RANGE_POLICY_SHA384));
  });

  it('builds H-3 as ECC P-384, SHA-384, AES-256-CFB, userWithAuth, Policy B, empty unique', () => {
    const t = ekTemplate('ecc384');
    const info = parseTpm2bPublic(t);
    expect(info.type).toBe('ecc');
    expect(info.nameAlg).toBe('sha384');
    expect(info.objectAttributes.raw).toBe(0x000300f2);
    expect(Buffer.from(info.authPolicy)).toEqual(Buffer.from(EK_HIGH_RANGE_POLICY_SHA384));
    if (info.type !== 'ecc') throw new Error('not ECC');
    expect(info.parameters.curve).toBe('NIST_P384');
    expect(info.unique.x).toHaveLength(0);
    expect(info.unique.y).toHaveLength(0);
    // symmetric AES (0x0006), 256 bits, CFB (0x0043) right after the 48-byte policy
    expect(Buffer.from(t.subarray(2 + 10 + 48, 2 + 10 + 48 + 6)).toString('hex')).toBe('000601000043');
  });

  it('recognises the template behind an EK public area, whatever its unique field', () => {
    const x = new Uint8Array(48).fill(7);
    expect(ekAlgOfPublic(ekTemplate('ecc384', { x, y: x }))).toBe('ecc384');
    expect(ekAlgOfPublic(ekTemplate('ecc', { x: x.subarray(0, 32), y: x.subarray(0, 32) }))).toBe('ecc');
    expect(ekAlgOfPublic(ekTemplate('rsa', { n: new Uint8Array(256).fill(1) }))).toBe('rsa');
    expect(ekAlgOfPublic(akTemplate('ecc'))).toBeUndefined();
    expect(ekAlgOfPublic(new Uint8Array(3))).toBeUndefined();
  });

  it('maps only the two known EK policies to a session recipe', () => {
    expect(ekPolicyOf('sha256', EK_AUTH_POLICY)).toEqual({ hashAlg: TPM_ALG.SHA256 });
    expect(ekPolicyOf('sha384', EK_HIGH_RANGE_POLICY_SHA384)).toEqual({ hashAlg: TPM_ALG.SHA384, orBranches: [EK_POLICY_A_SHA384, EK_POLICY_C_SHA384] });
    expect(ekPolicyOf('sha384', EK_AUTH_POLICY)).toBeUndefined();
    expect(ekPolicyOf('sha256', new Uint8Array(0))).toBeUndefined();
  });
});
