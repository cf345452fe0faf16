import { OcicryptError } from '../errors.js';
import { MAX_PACKET_BYTES, unwrapAnnotationPacket, wrapAnnotationPacket, type KekResolver, type WrapPacketOptions } from './annotation-packet.js';
import { KEYS_ANNOTATION_PREFIX, splitKeysAnnotation, type Recipient, type Unwrapper } from './types.js';

/** The key-provider name CoCo's guest uses (ocicrypt.conf `key-providers.attestation-agent`). */
export const COCO_KEY_PROVIDER = 'attestation-agent';
const PROVIDER_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** `org.opencontainers.image.enc.keys.provider.<name>`. */
export function keyProviderAnnotation(provider: string): string {
  if (!PROVIDER_NAME.test(provider)) throw new TypeError('key provider names are 1-64 of [A-Za-z0-9_.-]');
  return `${KEYS_ANNOTATION_PREFIX}provider.${provider}`;
}

/**
 * A {@link Recipient} that writes CoCo annotation packets for key provider `provider`
 * (default `attestation-agent`), wrapping optsdata with the KEK named by `kid` (A256GCM).
 * What a key provider's `WrapKey` would return, done locally by the image owner.
 */
export function keyProviderRecipient(opts: WrapPacketOptions & { provider?: string }): Recipient {
  const provider = opts.provider ?? COCO_KEY_PROVIDER;
  keyProviderAnnotation(provider);
  const kek = Buffer.from(opts.kek);
  const packetOpts: WrapPacketOptions = { kid: opts.kid, kek, packetVersion: opts.packetVersion ?? 1 };
  wrapAnnotationPacket(Buffer.alloc(0), packetOpts); // validates kid and KEK now (TypeError)
  return { scheme: `provider.${provider}`, wrap: async (optsData) => wrapAnnotationPacket(optsData, packetOpts) };
}

/**
 * An {@link Unwrapper} for key provider `provider`: finds its annotation, and unwraps each packet
 * with the KEK `getKek` resolves until one succeeds (ocicrypt tries every value the same way).
 */
export function keyProviderUnwrapper(opts: { provider?: string; getKek: KekResolver }): Unwrapper {
  const annotation = keyProviderAnnotation(opts.provider ?? COCO_KEY_PROVIDER);
  return async (annotations) => {
    const value = annotations[annotation];
    // SECURITY: no wrapped key for this provider, no decryption.
    if (value === undefined || value === '') throw new OcicryptError('NO_WRAPPED_KEY', `layer has no key for provider ${opts.provider ?? COCO_KEY_PROVIDER}`);
    let first: unknown;
    for (const packet of splitKeysAnnotation(value, MAX_PACKET_BYTES)) {
      try {
        return await unwrapAnnotationPacket(packet, opts.getKek);
      } catch (err) {
        first ??= err;
      }
    }
    throw first;
  };
}
