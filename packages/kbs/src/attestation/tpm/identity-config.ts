/**
 * The `[tpm]` keys of hardware identity (issue 3), parsed once by config.ts:
 *   ek_ca_dir              directory of EK CA certificates (PEM/DER)   default <data_dir>/ek-ca
 *   ek_allowlist_dir       EK allowlist, files named by EK hash         default <data_dir>/ek-allowlist
 *   enrolment_dir          AK → EK bindings and revocations             default <data_dir>/enrolments
 *   require_ek_certificate the EK must chain to the CA store            default false
 *   require_ek_allowlist   the EK must be in the allowlist              default false
 *   trust_domain           SPIFFE trust domain of node IDs              default keyhold.local
 */
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';

export const TPM_IDENTITY_CONFIG_FIELDS = {
  ek_ca_dir: z.string().optional(),
  ek_allowlist_dir: z.string().optional(),
  enrolment_dir: z.string().optional(),
  require_ek_certificate: z.boolean().optional(),
  require_ek_allowlist: z.boolean().optional(),
  trust_domain: z.string().regex(/^[a-z0-9._-]{1,255}$/, 'trust_domain must be a SPIFFE trust domain ([a-z0-9._-]+)').optional(),
};

export interface TpmIdentityConfig {
  readonly ekCaDir: string;
  /** True when ek_ca_dir was not configured (the default directory is created empty). */
  readonly ekCaDirIsDefault: boolean;
  readonly ekAllowlistDir: string;
  readonly enrolmentDir: string;
  readonly requireEkCertificate: boolean;
  readonly requireEkAllowlist: boolean;
  readonly trustDomain: string;
}

type FileFields = { [K in keyof typeof TPM_IDENTITY_CONFIG_FIELDS]?: z.infer<(typeof TPM_IDENTITY_CONFIG_FIELDS)[K]> };

export function tpmIdentityConfigFrom(file: FileFields | undefined, dataDir: string): TpmIdentityConfig {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(p));
  return {
    ekCaDir: file?.ek_ca_dir !== undefined ? abs(file.ek_ca_dir) : join(dataDir, 'ek-ca'),
    ekCaDirIsDefault: file?.ek_ca_dir === undefined,
    ekAllowlistDir: file?.ek_allowlist_dir !== undefined ? abs(file.ek_allowlist_dir) : join(dataDir, 'ek-allowlist'),
    enrolmentDir: file?.enrolment_dir !== undefined ? abs(file.enrolment_dir) : join(dataDir, 'enrolments'),
    requireEkCertificate: file?.require_ek_certificate ?? false,
    requireEkAllowlist: file?.require_ek_allowlist ?? false,
    trustDomain: file?.trust_domain ?? 'keyhold.local',
  };
}
