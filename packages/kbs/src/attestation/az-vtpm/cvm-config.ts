/**
 * The `[cvm]` keys (issue 17: Azure confidential-VM vTPMs, tees `az-snp-vtpm` / `az-tdx-vtpm`),
 * parsed once by config.ts:
 *   enabled              accept az-snp-vtpm and az-tdx-vtpm evidence            default true
 *   amd_builtin_roots    trust the AMD ARK/ASK (Milan, Genoa, Turin) shipped     default true
 *   amd_ark_dir          directory of further ARK/ASK PEM files (AMD's cert_chain: ASK then ARK)
 *   intel_builtin_root   trust Intel's SGX Root CA shipped                       default true
 *   intel_root_ca        a further Intel root certificate file (PEM)
 *   tdx_collateral_file  Intel TCB collateral (JSON, dcap-qvl QuoteCollateralV3 layout, one object or an
 *                        array per FMSPC); without it a TD's TCB status is `unknown`
 */
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';

export const CVM_CONFIG_SCHEMA = z
  .object({
    enabled: z.boolean().optional(),
    amd_builtin_roots: z.boolean().optional(),
    amd_ark_dir: z.string().optional(),
    intel_builtin_root: z.boolean().optional(),
    intel_root_ca: z.string().optional(),
    tdx_collateral_file: z.string().optional(),
  })
  .strict();

export interface CvmConfig {
  readonly enabled: boolean;
  readonly amdBuiltinRoots: boolean;
  readonly amdArkDir: string | undefined;
  readonly intelBuiltinRoot: boolean;
  readonly intelRootCaFile: string | undefined;
  readonly tdxCollateralFile: string | undefined;
}

export function cvmConfigFrom(file: z.infer<typeof CVM_CONFIG_SCHEMA> | undefined): CvmConfig {
  const abs = (p: string | undefined): string | undefined => (p === undefined ? undefined : isAbsolute(p) ? p : resolve(p));
  return {
    enabled: file?.enabled ?? true,
    amdBuiltinRoots: file?.amd_builtin_roots ?? true,
    amdArkDir: abs(file?.amd_ark_dir),
    intelBuiltinRoot: file?.intel_builtin_root ?? true,
    intelRootCaFile: abs(file?.intel_root_ca),
    tdxCollateralFile: abs(file?.tdx_collateral_file),
  };
}
