import { OcicryptError } from './errors.js';

export const MEDIA_TYPE_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_TYPE_LAYER_TAR_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const MEDIA_TYPE_LAYER_TAR_GZIP_ENCRYPTED = 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted';

/** The suffix ocicrypt (containers/image `manifest.OCI1`) appends to an encrypted layer's media type. */
export const ENCRYPTED_SUFFIX = '+encrypted';

/** Layer media types ocicrypt can encrypt (OCI image-spec layer types). */
export const ENCRYPTABLE_LAYER_MEDIA_TYPES: readonly string[] = [
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
];

export function isEncryptedMediaType(mediaType: string): boolean {
  return mediaType.endsWith(ENCRYPTED_SUFFIX);
}

/** `…tar+gzip` → `…tar+gzip+encrypted`. */
export function encryptedMediaType(mediaType: string): string {
  if (isEncryptedMediaType(mediaType)) throw new OcicryptError('LAYER_ALREADY_ENCRYPTED', 'layer is already encrypted');
  // SECURITY: only OCI layer types are encrypted; anything else would produce a media type no
  // runtime decrypts (containers/image manifest/oci.go, encrypted layer types).
  if (!ENCRYPTABLE_LAYER_MEDIA_TYPES.includes(mediaType)) {
    throw new OcicryptError('OCI_UNSUPPORTED_MEDIA_TYPE', `layer media type ${JSON.stringify(mediaType.slice(0, 200))} cannot be encrypted`);
  }
  return mediaType + ENCRYPTED_SUFFIX;
}

/** `…tar+gzip+encrypted` → `…tar+gzip`. */
export function decryptedMediaType(mediaType: string): string {
  const plain = mediaType.slice(0, -ENCRYPTED_SUFFIX.length);
  // SECURITY: an encrypted layer must decrypt to an OCI layer type, not to a manifest or config
  // type that a consumer would interpret differently (containers/image manifest/oci.go).
  if (!isEncryptedMediaType(mediaType) || !ENCRYPTABLE_LAYER_MEDIA_TYPES.includes(plain)) {
    throw new OcicryptError('OCI_UNSUPPORTED_MEDIA_TYPE', `${JSON.stringify(mediaType.slice(0, 200))} is not an encrypted OCI layer type`);
  }
  return plain;
}
