import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { VerifierError } from '@keyhold/verifier';
import {
  AMD_SEV_ROOTS,
  CvmError,
  INTEL_SGX_ROOT_CA_PEM,
  appraiseAzSnpVtpmEvidence,
  appraiseAzTdxVtpmEvidence,
  createSnpTrustAnchors,
  createTdxTrustAnchors,
  parseTdxCollateral,
  pemCertificates,
  type AzSnpVtpmAppraisal,
  type AzTdxVtpmAppraisal,
  type TdxCollateral,
} from '@keyhold/verifier/cvm';
import { EXIT, type CommandIo } from '../command.js';

const USAGE = `Usage: keyhold verify-evidence --tee az-snp-vtpm|az-tdx-vtpm FILE --report-data HEX [options] [--json]

Verifies Trustee az-snp-vtpm / az-tdx-vtpm evidence (v0, v1, v2) offline, as the KBS does: the vTPM
quote with the AK the HCL report publishes (signature, report data, PCR digest), the HCL variable
data's binding into the hardware report, and the vendor chain: AMD VCEK → ASK → ARK and the SEV-SNP
report (signature, TCB, chip id, VMPL 0), or Intel's PCK chain, QE report and TD quote (TCB status
from collateral when given, else unknown). FILE is the primary evidence JSON (or a tee-evidence
object holding it as primary_evidence).

  --tee TEE               az-snp-vtpm or az-tdx-vtpm
  --report-data HEX       the report data the quote must carry (1..64 bytes; the KBS uses the
                          runtime-data digest)
  --init-data-digest HEX  32-byte init-data digest PCR8 must hold
  --amd-ark FILE          further AMD ARK/ASK certificates (PEM); repeatable
  --intel-root FILE       a further Intel root certificate (PEM)
  --no-builtin-roots      trust only the roots given (not the shipped AMD/Intel roots)
  --collateral FILE       Intel TCB collateral (JSON, QuoteCollateralV3 layout) for az-tdx-vtpm
  --now ISO-8601          check certificate validity at this time (default: now)
  --json                  print the verified claims as JSON on stdout

Exit status: 0 valid, 1 invalid, 2 usage error.`;

const MAX_FILE_BYTES = 1024 * 1024;

class UsageError extends Error {}

async function readInput(file: string, what: string): Promise<Buffer> {
  try {
    const st = await stat(file);
    if (!st.isFile() || st.size > MAX_FILE_BYTES) throw new UsageError(`${what} ${file}: not a regular file of at most ${MAX_FILE_BYTES} bytes`);
    return await readFile(file);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? 'cannot read'}`);
  }
}

function hexArg(v: string, name: string, min: number, max: number): Uint8Array {
  const h = v.startsWith('0x') ? v.slice(2) : v;
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(h) || h.length < 2 * min || h.length > 2 * max) throw new UsageError(`${name} must be hex of ${min === max ? min : `${min}..${max}`} bytes`);
  return new Uint8Array(Buffer.from(h, 'hex'));
}

function summary(r: AzSnpVtpmAppraisal | AzTdxVtpmAppraisal): string {
  const c = r.claims;
  const hw = r.tee === 'az-snp-vtpm' ? `SEV-SNP ${r.chain.generation}, measurement ${String((c['snp'] as Record<string, unknown>)['measurement'])}` : `TDX, TCB ${r.tcb.status}, MRTD ${String((c['quote'] as { body: Record<string, unknown> }).body['mr_td'])}`;
  return `valid ${r.tee} evidence (version ${r.evidenceVersion}): ${hw}; report_data ${String(c['report_data'])}; debug ${r.debugAllowed ? 'ALLOWED' : 'off'}\n`;
}

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let values: { tee?: string; 'report-data'?: string; 'init-data-digest'?: string; 'amd-ark'?: string[]; 'intel-root'?: string; 'no-builtin-roots'?: boolean; collateral?: string; now?: string; json?: boolean; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        tee: { type: 'string' },
        'report-data': { type: 'string' },
        'init-data-digest': { type: 'string' },
        'amd-ark': { type: 'string', multiple: true },
        'intel-root': { type: 'string' },
        'no-builtin-roots': { type: 'boolean' },
        collateral: { type: 'string' },
        now: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (err) {
    io.stderr.write(`keyhold verify-evidence: ${(err as Error).message.split('\n')[0]}\n`);
    return EXIT.USAGE;
  }
  if (values.help === true) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT.OK;
  }
  let result: AzSnpVtpmAppraisal | AzTdxVtpmAppraisal;
  try {
    const tee = values.tee;
    if (tee !== 'az-snp-vtpm' && tee !== 'az-tdx-vtpm') throw new UsageError('--tee must be az-snp-vtpm or az-tdx-vtpm');
    if (positionals.length !== 1) throw new UsageError('give exactly one evidence FILE');
    if (values['report-data'] === undefined) throw new UsageError('--report-data is required');
    const expectedReportData = hexArg(values['report-data'], '--report-data', 1, 64);
    const initDataDigest = values['init-data-digest'] !== undefined ? hexArg(values['init-data-digest'], '--init-data-digest', 32, 32) : undefined;
    const now = values.now !== undefined ? new Date(values.now) : new Date();
    if (Number.isNaN(now.getTime())) throw new UsageError('--now must be an ISO-8601 time');
    let evidence: unknown;
    try {
      evidence = JSON.parse((await readInput(positionals[0] as string, 'evidence')).toString('utf8'));
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`evidence ${positionals[0]}: not JSON`);
    }
    if (typeof evidence === 'object' && evidence !== null && 'primary_evidence' in evidence) evidence = (evidence as Record<string, unknown>)['primary_evidence'];
    const builtin = values['no-builtin-roots'] !== true;
    const base = { expectedReportData, ...(initDataDigest !== undefined ? { initDataDigest } : {}), now };
    if (tee === 'az-snp-vtpm') {
      const certs = builtin ? AMD_SEV_ROOTS.flatMap((r) => [...pemCertificates(r.askPem), ...pemCertificates(r.arkPem)]) : [];
      for (const f of values['amd-ark'] ?? []) certs.push(...pemCertificates((await readInput(f, '--amd-ark')).toString('latin1')));
      let trustAnchors;
      try {
        trustAnchors = createSnpTrustAnchors(certs);
      } catch (err) {
        throw new UsageError(`AMD trust anchors: ${(err as Error).message}`);
      }
      result = appraiseAzSnpVtpmEvidence(evidence, { ...base, trustAnchors });
    } else {
      const certs = builtin ? pemCertificates(INTEL_SGX_ROOT_CA_PEM) : [];
      if (values['intel-root'] !== undefined) certs.push(...pemCertificates((await readInput(values['intel-root'], '--intel-root')).toString('latin1')));
      let trustAnchors;
      let collateral: readonly TdxCollateral[] | undefined;
      try {
        trustAnchors = createTdxTrustAnchors(certs);
        if (values.collateral !== undefined) collateral = parseTdxCollateral(JSON.parse((await readInput(values.collateral, '--collateral')).toString('utf8')));
      } catch (err) {
        if (err instanceof UsageError) throw err;
        throw new UsageError(`Intel trust anchors / collateral: ${(err as Error).message}`);
      }
      result = appraiseAzTdxVtpmEvidence(evidence, { ...base, trustAnchors, ...(collateral !== undefined ? { collateral } : {}) });
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`keyhold verify-evidence: ${err.message}\n`);
      return EXIT.USAGE;
    }
    if (err instanceof CvmError || err instanceof VerifierError) {
      if (values.json === true) io.stdout.write(`${JSON.stringify({ valid: false, code: err.code, reason: err.message })}\n`);
      io.stderr.write(`keyhold verify-evidence: invalid evidence: ${err.message} (${err.code})\n`);
      return EXIT.FAIL;
    }
    throw err;
  }
  if (values.json === true) {
    const extra = result.tee === 'az-snp-vtpm' ? { chain: result.chain } : { tcb: result.tcb };
    io.stdout.write(`${JSON.stringify({ valid: true, tee: result.tee, evidence_version: result.evidenceVersion, debug_allowed: result.debugAllowed, ...extra, claims: result.claims })}\n`);
  } else {
    io.stdout.write(summary(result));
  }
  return EXIT.OK;
}
