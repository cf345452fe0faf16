import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { AgentError, TpmError } from '../errors.js';
import type { AkBlob, TpmDevice, TpmKey } from './device.js';
import { TpmReader } from './internal/tpm-bytes.js';
import { decodePublicArea } from './public-area.js';
import { AK_ATTRIBUTES, AK_REQUIRED_ATTRIBUTES, type EkAlg, type KeyAlg } from './templates.js';

export interface LoadAkOptions {
  /** AK algorithm; `rsa` (RSASSA-SHA256, what Trustee verifies) by default. */
  alg?: KeyAlg;
  /** EK algorithm for the parent; `rsa` by default. */
  ekAlg?: EkAlg;
  /**
   * Directory (absolute) where the AK's TPM2B_PRIVATE / TPM2B_PUBLIC are kept as `ak-<alg>.priv` /
   * `ak-<alg>.pub` (the formats tpm2_create -r / -u write). Required unless `persistentHandle` is set.
   */
  stateDir?: string;
  /** Use the AK at this persistent handle (guest-components uses 0x81010002). */
  persistentHandle?: number;
  /** With `persistentHandle`: create the AK under the EK and persist it there when the handle is empty. */
  persist?: boolean;
}

export interface LoadedAk {
  readonly ak: TpmKey;
  /** The EK the AK was loaded under (undefined for a persistent AK, which needs no parent). */
  readonly ek: TpmKey | undefined;
  /** True when the AK was created by this call. */
  readonly created: boolean;
  /** Flush the AK and EK from the TPM. */
  release(): Promise<void>;
}

const MAX_BLOB_BYTES = 4096;

/** Refuse a persistent key that cannot serve as an AK. */
export function assertAkAttributes(key: TpmKey): void {
  const objectAttributes = decodePublicArea(key.publicArea).objectAttributes.raw;
  // SECURITY: an unrestricted or non-fixedTPM key at the AK handle could sign forged TPMS_ATTEST structures (TPM 2.0 Part 1, 25.2.2)
  if ((objectAttributes & AK_REQUIRED_ATTRIBUTES) !== AK_REQUIRED_ATTRIBUTES) {
    throw new TpmError('TPM_NO_AK', 'the key at the AK handle is not a restricted fixedTPM signing key');
  }
}

function paths(stateDir: string, alg: KeyAlg): { priv: string; pub: string } {
  return { priv: join(stateDir, `ak-${alg}.priv`), pub: join(stateDir, `ak-${alg}.pub`) };
}

/** Parse stored AK files; AK_STORE_FAILED when they are not an AK of the expected kind. */
export function parseStoredAk(alg: KeyAlg, privateBlob: Uint8Array, publicArea: Uint8Array): AkBlob {
  try {
    const priv = new TpmReader(privateBlob, 'TPM2B_PRIVATE');
    priv.tpm2b(MAX_BLOB_BYTES);
    priv.end();
    const info = decodePublicArea(publicArea);
    // SECURITY: a swapped state file must not turn a non-restricted or decrypt key into "the AK" (TCG TPM 2.0 Keys for Device Identity, 7.3)
    if (info.type !== alg || info.objectAttributes.raw !== AK_ATTRIBUTES) {
      throw new AgentError('AK_STORE_FAILED', 'stored AK public area is not an attestation key of the expected type');
    }
  } catch (err) {
    if (err instanceof AgentError && err.code === 'AK_STORE_FAILED') throw err;
    throw new AgentError('AK_STORE_FAILED', 'stored AK files are malformed', { cause: err });
  }
  return { alg, privateBlob, publicArea };
}

/** Private blob present, public area not (yet): a pair being published by another agent. */
class PairInProgress extends Error {}

async function readStoredOnce(stateDir: string, alg: KeyAlg): Promise<AkBlob | undefined> {
  const p = paths(stateDir, alg);
  const read = async (file: string): Promise<Buffer | undefined> => {
    try {
      return await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new AgentError('AK_STORE_FAILED', 'AK state files could not be read', { cause: err });
    }
  };
  const priv = await read(p.priv);
  // The private blob is published first (publishStored): without it there is no AK.
  if (priv === undefined) return undefined;
  const pub = await read(p.pub);
  if (pub === undefined) throw new PairInProgress();
  return parseStoredAk(alg, new Uint8Array(priv), new Uint8Array(pub));
}

/**
 * The stored AK, or undefined. A private blob whose public area is missing is a pair another agent
 * is publishing right now: waited for briefly (1 s), then reported (an agent that crashed in between).
 */
async function readStored(stateDir: string, alg: KeyAlg): Promise<AkBlob | undefined> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await readStoredOnce(stateDir, alg);
    } catch (err) {
      if (!(err instanceof PairInProgress)) throw err;
      if (attempt >= 40) {
        const p = paths(stateDir, alg);
        throw new AgentError('AK_STORE_FAILED', `incomplete AK state: ${p.priv} without ${p.pub} (an interrupted first run?); remove ${p.priv} to create a new AK`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/**
 * Publish a new AK pair unless another agent published one first (agents started at once on a
 * fresh node, e.g. ocicrypt running the key provider per layer). Both files are written to
 * temporary names; the private blob is linked into place with link(), which fails when the name
 * exists — the one exclusive step — then the public area is renamed over any leftover. Returns
 * false when another agent won: its pair is the AK.
 */
async function publishStored(stateDir: string, blob: AkBlob): Promise<boolean> {
  const p = paths(stateDir, blob.alg);
  const suffix = `${randomBytes(6).toString('hex')}.tmp`;
  const tmpPriv = `${p.priv}.${suffix}`;
  const tmpPub = `${p.pub}.${suffix}`;
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    await writeFile(tmpPub, blob.publicArea, { mode: 0o600, flag: 'wx' });
    await writeFile(tmpPriv, blob.privateBlob, { mode: 0o600, flag: 'wx' });
    try {
      // SECURITY: one AK per state dir; a second creator must not overwrite (or tear) the pair the
      // first one stored and may already attest with (lost update of agent state).
      await link(tmpPriv, p.priv);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    await rename(tmpPub, p.pub);
    return true;
  } catch (err) {
    throw new AgentError('AK_STORE_FAILED', 'AK state files could not be written', { cause: err });
  } finally {
    await rm(tmpPriv, { force: true });
    await rm(tmpPub, { force: true });
  }
}

/**
 * Get the agent's AK, stable across runs:
 * - `persistentHandle` set: the key at that handle (TPM_NO_AK if empty), or with `persist` one
 *   created under the EK and made persistent there;
 * - otherwise: the AK stored in `stateDir`, loaded under a freshly created EK, or a new AK created
 *   under the EK (like tpm2_createak) and stored there with mode 0600.
 */
export async function loadOrCreateAk(tpm: TpmDevice, options: LoadAkOptions): Promise<LoadedAk> {
  const alg = options.alg ?? 'rsa';
  const ekAlg = options.ekAlg ?? 'rsa';
  if (options.persistentHandle !== undefined) {
    try {
      const ak = await tpm.loadPersistentKey(options.persistentHandle);
      try {
        assertAkAttributes(ak);
      } catch (err) {
        await tpm.flushKey(ak);
        throw err;
      }
      return { ak, ek: undefined, created: false, release: () => tpm.flushKey(ak) };
    } catch (err) {
      if (!(err instanceof TpmError && err.code === 'TPM_NO_AK' && options.persist === true)) throw err;
    }
    const ek = await tpm.createEk(ekAlg);
    try {
      const { key } = await tpm.createAk(ek, alg);
      try {
        const ak = await tpm.persistKey(key, options.persistentHandle);
        return { ak, ek: undefined, created: true, release: () => tpm.flushKey(ak) };
      } finally {
        await tpm.flushKey(key);
      }
    } finally {
      await tpm.flushKey(ek);
    }
  }
  if (options.stateDir === undefined || !isAbsolute(options.stateDir)) {
    throw new TypeError('stateDir (absolute) or persistentHandle is required');
  }
  const ek = await tpm.createEk(ekAlg);
  try {
    const stored = await readStored(options.stateDir, alg);
    let ak: TpmKey;
    let created = false;
    if (stored !== undefined) {
      ak = await tpm.loadAk(ek, stored);
    } else {
      const made = await tpm.createAk(ek, alg);
      let published: boolean;
      try {
        published = await publishStored(options.stateDir, made.blob);
      } catch (err) {
        await tpm.flushKey(made.key);
        throw err;
      }
      if (published) {
        ak = made.key;
        created = true;
      } else {
        // Another agent stored its AK first: use that one (this process's new AK is discarded).
        await tpm.flushKey(made.key);
        const theirs = await readStored(options.stateDir, alg);
        if (theirs === undefined) throw new AgentError('AK_STORE_FAILED', 'AK state vanished while it was being created');
        ak = await tpm.loadAk(ek, theirs);
      }
    }
    return {
      ak,
      ek,
      created,
      release: async () => {
        await tpm.flushKey(ak);
        await tpm.flushKey(ek);
      },
    };
  } catch (err) {
    await tpm.flushKey(ek);
    throw err;
  }
}
