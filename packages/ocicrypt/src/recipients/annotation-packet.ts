import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { OcicryptError } from '../errors.js';
import { fromBase64, toBase64, wipe } from '../internal/bytes.js';
import { MAX_OPTS_BYTES, parsePrivateOptions } from '../layer/options.js';

/** Wrap algorithms of CoCo's annotation packet (guest-components crypto `WrapType`). */
export type WrapType = 'A256GCM' | 'A256CTR';
export const WRAP_TYPES: readonly WrapType[] = ['A256GCM', 'A256CTR'];
export const KEK_BYTES = 32;
const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
const CTR_IV_BYTES = 16;
/** The one AnnotationPacketV2 version guest-components defines. */
export const ANNOTATION_PACKET_V2_VERSION = '0.1.0';
/** The KEK provider that means "a KBS resource named by kid" (v1 packets always mean it). */
export const PROVIDER_KBS = 'kbs';
export const MAX_PACKET_BYTES = 64 * 1024;
const MAX_KID_CHARS = 1024;

/**
 * A decoded CoCo annotation packet, v1 `{"kid","wrapped_data","iv","wrap_type"}` or v2 (adds
 * `version`, `provider`, `provider_settings`, `annotations`; guest-components
 * `AnnotationPacketV2`, where a v1 packet reads as v2 with version "0.1.0" and provider "kbs").
 * Nothing in it is authenticated until the unwrap succeeds.
 */
export interface AnnotationPacket {
  readonly version: 1 | 2;
  readonly kid: string;
  readonly provider: string;
  readonly wrapType: WrapType;
  readonly iv: Buffer;
  readonly wrappedData: Buffer;
  readonly providerSettings: Readonly<Record<string, unknown>>;
  readonly annotations: Readonly<Record<string, unknown>>;
}

function malformed(msg: string): OcicryptError {
  return new OcicryptError('PACKET_MALFORMED', msg);
}

function plainObject(v: unknown, what: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  // SECURITY: provider_settings / annotations are maps (guest-components serde), nothing else.
  if (typeof v !== 'object' || Array.isArray(v)) throw malformed(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

/** Parse an annotation packet's JSON. Checks shape and lengths only; see {@link unwrapAnnotationPacket}. */
export function decodeUnverifiedAnnotationPacket(bytes: Uint8Array): AnnotationPacket {
  // SECURITY: bound what a hostile image makes us parse (STYLE §6).
  if (bytes.byteLength > MAX_PACKET_BYTES) throw malformed('annotation packet is too large');
  let v: unknown;
  // SECURITY: every packet field is type-checked before use; a packet of the wrong shape is
  // refused before any KEK is requested (guest-components AnnotationPacket serde types).
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (cause) {
    throw new OcicryptError('PACKET_MALFORMED', 'annotation packet is not JSON', { cause });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed('annotation packet is not a JSON object');
  const o = v as Record<string, unknown>;
  const isV2 = 'version' in o || 'provider' in o || 'provider_settings' in o || 'annotations' in o;
  // SECURITY: refuse packet versions whose meaning we do not know (guest-components
  // AnnotationPacketV2 requires "0.1.0").
  if (isV2 && o.version !== undefined && o.version !== ANNOTATION_PACKET_V2_VERSION) throw malformed('unsupported annotation packet version');
  const provider = o.provider ?? PROVIDER_KBS;
  if (typeof provider !== 'string') throw malformed('provider must be a string');
  // SECURITY: only KBS-held KEKs are supported; a packet naming another KMS is refused rather
  // than unwrapped with a KBS key of the same name.
  if (provider !== PROVIDER_KBS) throw new OcicryptError('PACKET_PROVIDER_UNSUPPORTED', 'annotation packet names a KEK provider other than kbs');
  if (typeof o.kid !== 'string' || o.kid.length === 0 || o.kid.length > MAX_KID_CHARS) throw malformed('kid must be a non-empty string');
  // SECURITY: for the kbs provider the kid is a KBS resource URI (guest-components ResourceUri);
  // the caller still parses it fully before fetching.
  if (!o.kid.startsWith('kbs://')) throw malformed('kid is not a kbs:// resource URI');
  if (typeof o.wrap_type !== 'string') throw malformed('wrap_type is missing');
  // SECURITY: only the wrap algorithms guest-components implements (crypto symmetric.rs).
  if (!(WRAP_TYPES as readonly string[]).includes(o.wrap_type)) throw new OcicryptError('PACKET_WRAP_TYPE_UNSUPPORTED', 'unsupported wrap_type');
  const wrapType = o.wrap_type as WrapType;
  if (typeof o.iv !== 'string') throw malformed('iv is missing');
  const iv = fromBase64(o.iv, 'PACKET_MALFORMED', 'iv', CTR_IV_BYTES);
  // SECURITY: exact IV lengths (A256GCM 12 bytes, A256CTR 16 bytes; guest-components crypto).
  if (iv.length !== (wrapType === 'A256GCM' ? GCM_IV_BYTES : CTR_IV_BYTES)) throw malformed('iv has the wrong length for wrap_type');
  if (typeof o.wrapped_data !== 'string') throw malformed('wrapped_data is missing');
  const wrappedData = fromBase64(o.wrapped_data, 'PACKET_MALFORMED', 'wrapped_data', MAX_OPTS_BYTES + GCM_TAG_BYTES);
  // SECURITY: an A256GCM blob shorter than its tag cannot be authentic.
  if (wrapType === 'A256GCM' && wrappedData.length <= GCM_TAG_BYTES) throw malformed('wrapped_data is shorter than the GCM tag');
  return {
    version: isV2 ? 2 : 1,
    kid: o.kid,
    provider,
    wrapType,
    iv,
    wrappedData,
    providerSettings: plainObject(o.provider_settings, 'provider_settings'),
    annotations: plainObject(o.annotations, 'annotations'),
  };
}

export interface WrapPacketOptions {
  /** KBS resource URI of the KEK, e.g. `kbs:///default/image-kek/app1`. */
  kid: string;
  /** 32-byte key-encryption key. Not retained. */
  kek: Uint8Array;
  /** 1 (default, what CoCo's sample key provider writes) or 2. */
  packetVersion?: 1 | 2;
}

/** Wrap optsdata into an annotation packet with A256GCM (wrapped_data = ciphertext || tag). */
export function wrapAnnotationPacket(optsData: Uint8Array, opts: WrapPacketOptions): Uint8Array {
  if (opts.kek.byteLength !== KEK_BYTES) throw new TypeError(`KEK must be ${KEK_BYTES} bytes`);
  if (!opts.kid.startsWith('kbs://') || opts.kid.length > MAX_KID_CHARS) throw new TypeError('kid must be a kbs:// resource URI');
  const iv = randomBytes(GCM_IV_BYTES);
  const c = createCipheriv('aes-256-gcm', opts.kek, iv);
  const wrapped = Buffer.concat([c.update(optsData), c.final(), c.getAuthTag()]);
  const common = { kid: opts.kid, wrapped_data: toBase64(wrapped), iv: toBase64(iv), wrap_type: 'A256GCM' };
  const packet = (opts.packetVersion ?? 1) === 2
    ? { version: ANNOTATION_PACKET_V2_VERSION, ...common, provider: PROVIDER_KBS, provider_settings: {}, annotations: {} }
    : common;
  return Buffer.from(JSON.stringify(packet), 'utf8');
}

/** Resolves the KEK a packet's kid names (the agent: from the KBS, after attesting). */
export type KekResolver = (kid: string, packet: AnnotationPacket) => Promise<Uint8Array>;

/**
 * Unwrap an annotation packet to optsdata. Guarantees: the packet is well-formed (see
 * {@link decodeUnverifiedAnnotationPacket}); the KEK is 32 bytes; for A256GCM the data is
 * authenticated; for A256CTR (unauthenticated) the result must at least parse as ocicrypt's
 * private layer options, so a wrong KEK fails here too. The KEK returned by `getKek` is wiped
 * after use. Errors thrown by `getKek` propagate unchanged.
 */
export async function unwrapAnnotationPacket(packetBytes: Uint8Array, getKek: KekResolver): Promise<Uint8Array> {
  const packet = decodeUnverifiedAnnotationPacket(packetBytes);
  const kek = await getKek(packet.kid, packet);
  try {
    // SECURITY: a KEK of the wrong size is a configuration or release error, never truncated or padded.
    if (kek.byteLength !== KEK_BYTES) throw new OcicryptError('PACKET_KEK_INVALID', `KEK must be ${KEK_BYTES} bytes`);
    let plain: Buffer;
    if (packet.wrapType === 'A256GCM') {
      const d = createDecipheriv('aes-256-gcm', kek, packet.iv);
      d.setAuthTag(packet.wrappedData.subarray(packet.wrappedData.length - GCM_TAG_BYTES));
      try {
        plain = Buffer.concat([d.update(packet.wrappedData.subarray(0, packet.wrappedData.length - GCM_TAG_BYTES)), d.final()]);
      } catch (cause) {
        // SECURITY: GCM tag check — a wrong KEK or a modified packet yields no key (NIST SP 800-38D).
        throw new OcicryptError('PACKET_UNWRAP_FAILED', 'annotation packet failed authentication (wrong KEK or corrupt packet)', { cause });
      }
    } else {
      const d = createDecipheriv('aes-256-ctr', kek, packet.iv);
      plain = Buffer.concat([d.update(packet.wrappedData), d.final()]);
    }
    try {
      // SECURITY: whatever we hand back must be ocicrypt layer options; garbage from an A256CTR
      // packet under the wrong KEK is refused here (guest-components gives ocicrypt the same).
      wipe(parsePrivateOptions(plain).symkey);
    } catch (cause) {
      wipe(plain);
      throw new OcicryptError('PACKET_UNWRAP_FAILED', 'unwrapped data is not layer options (wrong KEK or corrupt packet)', { cause });
    }
    return plain;
  } finally {
    wipe(kek);
  }
}
