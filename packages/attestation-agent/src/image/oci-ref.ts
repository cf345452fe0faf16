import { resolve } from 'node:path';
import type { OciImageRef } from '@keyhold/ocicrypt';

/**
 * Parse skopeo's `oci:DIR:TAG` (containers/image oci layout transport: the path ends at the
 * first colon). The tag is required: an unknown or missing tag never means "some image".
 */
export function parseOciRef(ref: string): OciImageRef {
  const m = /^oci:([^:]+):(.+)$/.exec(ref);
  if (m === null) throw new TypeError(`${JSON.stringify(ref.slice(0, 200))} is not oci:DIR:TAG`);
  const tag = m[2] as string;
  // OCI image-spec ref.name grammar (simplified): no whitespace, no control characters, no slashes at the ends.
  if (!/^[A-Za-z0-9_][A-Za-z0-9._@+/-]{0,254}$/.test(tag)) throw new TypeError(`invalid image tag ${JSON.stringify(tag.slice(0, 200))}`);
  return { dir: resolve(m[1] as string), tag };
}
