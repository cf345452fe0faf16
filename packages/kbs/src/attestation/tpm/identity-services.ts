import { DirectoryEkAllowlist, type EkAllowlist } from '../../identity/ek-allowlist.js';
import { FileEnrolmentStore, type EnrolmentStore } from '../../identity/enrolment-store.js';
import { EkCaDirectory } from './ek-trust.js';
import { IdentityExtension } from './identity-extension.js';
import type { TpmIdentityConfig } from './identity-config.js';

/** The owner-managed identity stores, shared by the identity extension, the admin API and releases. */
export interface IdentityServices {
  readonly allowlist: EkAllowlist;
  readonly enrolments: EnrolmentStore;
  readonly ca: Pick<EkCaDirectory, 'entries' | 'add'>;
}

/** Open the stores named by the config and build the identity extension over them. */
export async function openIdentity(config: TpmIdentityConfig, opts: { trustedAkList: boolean }): Promise<{ services: IdentityServices; extension: IdentityExtension }> {
  const ca = await EkCaDirectory.open(config.ekCaDir, { create: config.ekCaDirIsDefault });
  const allowlist = new DirectoryEkAllowlist(config.ekAllowlistDir);
  const enrolments = new FileEnrolmentStore(config.enrolmentDir);
  const extension = new IdentityExtension({
    caCertificates: () => ca.certificates,
    allowlist,
    enrolments,
    requireEkCertificate: config.requireEkCertificate,
    requireEkAllowlist: config.requireEkAllowlist,
    trustedAkList: opts.trustedAkList,
    trustDomain: config.trustDomain,
  });
  return { services: { allowlist, enrolments, ca }, extension };
}
