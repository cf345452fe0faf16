import {
  decodeKeyProviderInput,
  encodeKeyUnwrapOutput,
  keyProviderAnnotation,
  splitKeysAnnotation,
  unwrapAnnotationPacket,
  COCO_KEY_PROVIDER,
  type KekResolver,
  type Unwrapper,
} from '@keyhold/ocicrypt';
import { parseResourceUri, type ResourcePath } from '@keyhold/protocol';
import { KbsClientError } from '../kbs-client/errors.js';
import { asKeyProviderError, kekFetchError, KeyProviderError } from './errors.js';

/** Where KEKs come from: the agent's KBS client (which attests first when it has no valid token). */
export interface KekSource {
  getResource(path: ResourcePath, opts?: { version?: number }): Promise<Uint8Array>;
}

/** Largest annotation packet value accepted in one provider annotation entry. */
const MAX_PACKET_BYTES = 64 * 1024;

/**
 * The key provider's one operation, shared by the gRPC server, the `cmd` mode and
 * `keyhold-agent image decrypt`.
 */
export interface UnwrapService {
  /**
   * Unwrap one CoCo annotation packet (v1 or v2) to ocicrypt optsdata. Guarantees: the packet
   * is well-formed and names the `kbs` provider; its kid is a kbs:/// resource URI; the KEK is
   * fetched from the KBS for this call only and zeroed after; A256GCM packets authenticate;
   * the result parses as ocicrypt layer options. Throws {@link KeyProviderError}, never
   * returning a key on any failure. Does not check which image the packet came from.
   */
  unwrapPacket(packet: Uint8Array): Promise<Uint8Array>;
  /**
   * Answer one keyprovider protocol message (the JSON of `UnWrapKey` or of `cmd` stdin):
   * `{"keyunwrapresults":{"optsdata":"<b64>"}}`. `keywrap` is refused (OP_UNSUPPORTED).
   */
  handleMessage(message: Uint8Array | string): Promise<Buffer>;
  /** An ocicrypt Unwrapper reading `org.opencontainers.image.enc.keys.provider.<name>`. */
  layerUnwrapper(provider?: string): Unwrapper;
}

/** Build the unwrap service over a KEK source. */
export function createUnwrapService(source: KekSource): UnwrapService {
  const getKek: KekResolver = async (kid) => {
    let path: ResourcePath & { version?: number };
    try {
      // SECURITY: the kid must be a well-formed kbs:///REPO/TYPE/TAG URI; a host part is ignored
      // and the configured KBS is always used, so an image cannot send the node elsewhere
      // (guest-components ResourceUri; PROTOCOL-NOTES §4).
      path = parseResourceUri(kid);
    } catch (cause) {
      throw new KeyProviderError('KID_INVALID', 'kid is not a kbs:///REPO/TYPE/TAG resource URI', { cause });
    }
    try {
      return await source.getResource(path, path.version !== undefined ? { version: path.version } : {});
    } catch (err) {
      if (err instanceof KbsClientError) throw kekFetchError(err, kid);
      throw asKeyProviderError(err);
    }
  };

  const unwrapPacket = async (packet: Uint8Array): Promise<Uint8Array> => {
    try {
      // unwrapAnnotationPacket decodes and checks the packet before asking for the KEK, and
      // zeroes the KEK it was handed whatever happens.
      return await unwrapAnnotationPacket(packet, getKek);
    } catch (err) {
      throw asKeyProviderError(err);
    }
  };

  return {
    unwrapPacket,
    async handleMessage(message) {
      let input;
      try {
        input = decodeKeyProviderInput(message);
      } catch (err) {
        throw asKeyProviderError(err);
      }
      // SECURITY: the guest never wraps keys; refusing keywrap means an attacker on the socket
      // cannot use the node as a wrapping oracle for KBS-held KEKs.
      if (input.op !== 'keyunwrap') throw new KeyProviderError('OP_UNSUPPORTED', 'keywrap is not offered by the guest key provider');
      const annotation = input.keyunwrapparams.annotation;
      if (annotation === null) throw new KeyProviderError('REQUEST_INVALID', 'keyunwrap needs keyunwrapparams.annotation');
      const optsData = await unwrapPacket(annotation);
      try {
        return encodeKeyUnwrapOutput(optsData);
      } finally {
        optsData.fill(0);
      }
    },
    layerUnwrapper(provider = COCO_KEY_PROVIDER) {
      const name = keyProviderAnnotation(provider);
      return async (annotations) => {
        const value = annotations[name];
        // SECURITY: no packet for this provider, no key (and no KBS call).
        if (value === undefined || value === '') throw new KeyProviderError('PACKET_INVALID', `layer has no key for provider ${provider}`);
        let packets: Buffer[];
        try {
          packets = splitKeysAnnotation(value, MAX_PACKET_BYTES);
        } catch (err) {
          throw asKeyProviderError(err);
        }
        let first: unknown;
        for (const p of packets) {
          try {
            return await unwrapPacket(p);
          } catch (err) {
            first ??= err;
          }
        }
        throw first;
      };
    },
  };
}
