import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TpmKey } from '../tpm/device.js';
import { hashNameOfAlg } from '../tpm/internal/tpm-alg.js';
import { publicAreaName as tpmObjectName } from '../tpm/public-area.js';
import { ekAlgOfPublic, type EkAlg } from '../tpm/templates.js';

/** TPM_RH_ENDORSEMENT: the Qualified Name of the endorsement hierarchy is its handle (TPM 2.0 Part 1, 16). */
const TPM_RH_ENDORSEMENT = 0x4000000b;
const MAX_PUBLIC_BYTES = 4096;

/** QN_B = nameAlg_B ‖ H_nameAlg_B(QN_A ‖ Name_B) for B a child of A (TPM 2.0 Part 1, 16 "Names"). */
export function qualifiedNameOf(parentQualifiedName: Uint8Array, name: Uint8Array): Uint8Array | undefined {
  const hash = name.length >= 2 ? hashNameOfAlg((name[0]! << 8) | name[1]!) : undefined;
  if (hash === undefined) return undefined;
  return Buffer.concat([name.subarray(0, 2), createHash(hash).update(parentQualifiedName).update(name).digest()]);
}

/** The Qualified Name an AK has when it was created directly under the EK `ekName` (a primary of the endorsement hierarchy). */
export function akQualifiedNameUnderEk(ekName: Uint8Array, akName: Uint8Array): Uint8Array | undefined {
  const hierarchy = Buffer.alloc(4);
  hierarchy.writeUInt32BE(TPM_RH_ENDORSEMENT);
  const ekQn = qualifiedNameOf(hierarchy, ekName);
  return ekQn === undefined ? undefined : qualifiedNameOf(ekQn, akName);
}

/**
 * The EK's public area, kept between runs in the agent's state dir (`ek-<alg>.pub`, 0600), so that a
 * node with a persistent AK does not recreate its EK (TPM2_CreatePrimary of an RSA EK: ~40 ms on
 * swtpm, more on hardware) only to name it to the KBS.
 *
 * Fail safe: a cached EK is used only when this run's TPM vouches for it. TPM2_ReadPublic of the
 * persistent AK returns its Qualified Name, which chains the names of its parents; the cached EK is
 * used only if that equals H(H(TPM_RH_ENDORSEMENT ‖ Name(EK)) ‖ Name(AK)), i.e. the AK the TPM holds
 * now was created under exactly that EK. A cleared TPM (its AK gone, a new one made), another TPM
 * behind the same state dir, a changed endorsement seed, an AK made under another parent, or an
 * edited cache file all break the chain; the EK is then created afresh as before, and remembered
 * only if the chain holds for it. An unreadable or unwritable cache is ignored. When the KBS asks
 * for credential activation the real EK is always loaded (activation needs it in the TPM).
 */
export class EkPublicCache {
  readonly #dir: string;

  constructor(stateDir: string) {
    this.#dir = stateDir;
  }

  #file(alg: EkAlg): string {
    return join(this.#dir, `ek-${alg}.pub`);
  }

  /** The cached TPM2B_PUBLIC of the `alg` EK, if the TPM's qualified name of `ak` proves it is the AK's parent. */
  async lookup(alg: EkAlg, ak: TpmKey): Promise<Uint8Array | undefined> {
    if (ak.qualifiedName === undefined) return undefined;
    let pub: Uint8Array;
    try {
      // Synchronous: a file of a few hundred bytes in the agent's own state dir, read once per session.
      const bytes = readFileSync(this.#file(alg));
      if (bytes.length > MAX_PUBLIC_BYTES) return undefined;
      pub = new Uint8Array(bytes);
      // SECURITY: only an EK of the template asked for, whose name chains to the AK the TPM holds,
      // is named to the KBS; anything else is ignored and the EK is made afresh (stale or forged cache).
      if (ekAlgOfPublic(pub) !== alg) return undefined;
      const expected = akQualifiedNameUnderEk(tpmObjectName(pub), ak.name);
      if (expected === undefined || !Buffer.from(expected).equals(Buffer.from(ak.qualifiedName))) return undefined;
    } catch {
      return undefined;
    }
    return pub;
  }

  /** Remember `ek` for next time, if the TPM's qualified name of `ak` shows it is the AK's parent. */
  async remember(alg: EkAlg, ek: TpmKey, ak: TpmKey): Promise<void> {
    if (ak.qualifiedName === undefined) return;
    const expected = akQualifiedNameUnderEk(ek.name, ak.name);
    if (expected === undefined || !Buffer.from(expected).equals(Buffer.from(ak.qualifiedName))) return;
    const file = this.#file(alg);
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await mkdir(this.#dir, { recursive: true, mode: 0o700 });
      await writeFile(tmp, ek.publicArea, { mode: 0o600, flag: 'wx' });
      await rename(tmp, file);
    } catch {
      // A cache that cannot be written only costs the next run an EK creation.
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}
