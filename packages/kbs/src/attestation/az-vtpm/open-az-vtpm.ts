import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AMD_SEV_ROOTS,
  builtinTdxTrustAnchors,
  createSnpTrustAnchors,
  createTdxTrustAnchors,
  INTEL_SGX_ROOT_CA_PEM,
  parseTdxCollateral,
  pemCertificates,
  type TdxCollateral,
} from '@keyhold/verifier/cvm';
import { ConfigError } from '../../config.js';
import type { TpmExtension } from '../tpm/tpm-extension.js';
import { AzVtpmAppraiser } from './az-vtpm-appraiser.js';
import type { CvmConfig } from './cvm-config.js';

/** Files larger than this in the trust-anchor directory or as collateral are refused at start. */
const MAX_FILE_BYTES = 1024 * 1024;

async function readBounded(file: string, what: string): Promise<Buffer> {
  try {
    const s = await stat(file);
    if (!s.isFile() || s.size > MAX_FILE_BYTES) throw new Error(`not a regular file of at most ${MAX_FILE_BYTES} bytes`);
    return await readFile(file);
  } catch (err) {
    throw new ConfigError(`[cvm] ${what} ${file}: ${(err as Error).message}`);
  }
}

/** The DER certificates in a PEM or DER file. */
function certificatesIn(bytes: Buffer): Uint8Array[] {
  const text = bytes.toString('latin1');
  return text.includes('-----BEGIN CERTIFICATE-----') ? pemCertificates(text) : [new Uint8Array(bytes)];
}

/**
 * Read the `[cvm]` trust anchors and collateral (once, at start) and build the `az-snp-vtpm` and
 * `az-tdx-vtpm` appraisers; none when `[cvm] enabled = false`. A file that does not decode, or
 * anchors that do not form AMD ARK/ASK pairs / self-signed Intel roots, stop the KBS from starting.
 */
export async function openAzVtpmAppraisers(config: CvmConfig, extensions: readonly TpmExtension[]): Promise<AzVtpmAppraiser[]> {
  if (!config.enabled) return [];
  const amd: Uint8Array[] = config.amdBuiltinRoots ? AMD_SEV_ROOTS.flatMap((r) => [...pemCertificates(r.askPem), ...pemCertificates(r.arkPem)]) : [];
  if (config.amdArkDir !== undefined) {
    let names: string[];
    try {
      names = (await readdir(config.amdArkDir)).sort();
    } catch (err) {
      throw new ConfigError(`[cvm] amd_ark_dir ${config.amdArkDir}: ${(err as Error).message}`);
    }
    for (const n of names) amd.push(...certificatesIn(await readBounded(join(config.amdArkDir, n), 'amd_ark_dir file')));
  }
  const intel: Uint8Array[] = config.intelBuiltinRoot ? pemCertificates(INTEL_SGX_ROOT_CA_PEM) : [];
  if (config.intelRootCaFile !== undefined) intel.push(...certificatesIn(await readBounded(config.intelRootCaFile, 'intel_root_ca')));
  let collateral: readonly TdxCollateral[] | undefined;
  if (config.tdxCollateralFile !== undefined) {
    const text = (await readBounded(config.tdxCollateralFile, 'tdx_collateral_file')).toString('utf8');
    try {
      collateral = parseTdxCollateral(JSON.parse(text));
    } catch (err) {
      throw new ConfigError(`[cvm] tdx_collateral_file ${config.tdxCollateralFile}: ${(err as Error).message}`);
    }
  }
  const out: AzVtpmAppraiser[] = [];
  try {
    if (amd.length > 0) out.push(new AzVtpmAppraiser({ tee: 'az-snp-vtpm', snpTrustAnchors: createSnpTrustAnchors(amd), extensions }));
    if (intel.length > 0) {
      const tdxTrustAnchors = config.intelBuiltinRoot && config.intelRootCaFile === undefined ? builtinTdxTrustAnchors() : createTdxTrustAnchors(intel);
      out.push(new AzVtpmAppraiser({ tee: 'az-tdx-vtpm', tdxTrustAnchors, ...(collateral !== undefined ? { tdxCollateral: collateral } : {}), extensions }));
    }
  } catch (err) {
    throw new ConfigError(`[cvm] trust anchors: ${(err as Error).message}`);
  }
  return out;
}
