export { OcicryptError } from './errors.js';
export type { OcicryptErrorCode } from './errors.js';
export {
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
  MEDIA_TYPE_OCI_CONFIG,
  MEDIA_TYPE_LAYER_TAR_GZIP,
  MEDIA_TYPE_LAYER_TAR_GZIP_ENCRYPTED,
  ENCRYPTED_SUFFIX,
  ENCRYPTABLE_LAYER_MEDIA_TYPES,
  isEncryptedMediaType,
  encryptedMediaType,
  decryptedMediaType,
} from './media-types.js';
export { DescriptorSchema, ImageIndexSchema, ImageManifestSchema, REF_NAME_ANNOTATION, OCI_LAYOUT_VERSION } from './layout/descriptor.js';
export type { Descriptor, ImageIndex, ImageManifest } from './layout/descriptor.js';
export { OciLayoutReader, MAX_MANIFEST_BYTES } from './layout/read.js';
export { OciLayoutWriter } from './layout/write.js';
export { DigestCheck, DigestVerifier, DigestCounter } from './layout/verify-stream.js';
export {
  CIPHER_AES_256_CTR_HMAC_SHA256,
  SYMKEY_BYTES,
  NONCE_BYTES,
  HMAC_BYTES,
  encodePrivateOptions,
  encodePublicOptions,
  parsePrivateOptions,
  parsePublicOptions,
} from './layer/options.js';
export type { PrivateLayerOptions, PublicLayerOptions } from './layer/options.js';
export { LayerEncryptor, LayerDecryptor, LayerEncryptStream, LayerDecryptStream } from './layer/cipher-stream.js';
export type { ChunkTransform } from './layer/cipher-stream.js';
export { KEYS_ANNOTATION_PREFIX, PUBOPTS_ANNOTATION, splitKeysAnnotation } from './recipients/types.js';
export type { Recipient, Unwrapper } from './recipients/types.js';
export { JWE_SCHEME, JWE_ANNOTATION, JWE_ENC, JWE_KEY_ALGORITHMS, jweWrap, jweUnwrap, jweRecipient, jweUnwrapper } from './recipients/jwe.js';
export {
  WRAP_TYPES,
  KEK_BYTES,
  ANNOTATION_PACKET_V2_VERSION,
  PROVIDER_KBS,
  decodeUnverifiedAnnotationPacket,
  wrapAnnotationPacket,
  unwrapAnnotationPacket,
} from './recipients/annotation-packet.js';
export type { WrapType, AnnotationPacket, WrapPacketOptions, KekResolver } from './recipients/annotation-packet.js';
export { COCO_KEY_PROVIDER, keyProviderAnnotation, keyProviderRecipient, keyProviderUnwrapper } from './recipients/key-provider.js';
export {
  MAX_KEYPROVIDER_MESSAGE_BYTES,
  decodeBytesField,
  decodeKeyProviderInput,
  encodeKeyProviderInput,
  decodeKeyProviderOutput,
  encodeKeyWrapOutput,
  encodeKeyUnwrapOutput,
} from './keyprovider-protocol.js';
export type { KeyProviderOperation, KeyProviderParameters, KeyProviderInput, KeyProviderOutput } from './keyprovider-protocol.js';
export { encryptImage } from './image/encrypt.js';
export type { EncryptImageOptions } from './image/encrypt.js';
export { decryptImage } from './image/decrypt.js';
export type { DecryptImageOptions } from './image/decrypt.js';
export type { OciImageRef, ImageProgress, ProgressListener, LayerResult, ImageResult } from './image/types.js';
