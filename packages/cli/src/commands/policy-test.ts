import { readFile, stat } from 'node:fs/promises';
import { decodeJwt } from 'jose';
import { CliError, describeFileError } from '@keyhold/command-line';
import {
  PolicyCompileError,
  PolicyError,
  compilePolicy,
  evaluateAttestationPolicy,
  evaluateResourcePolicy,
  parsePolicyDocument,
  MAX_POLICY_DOCUMENT_CHARS,
} from '@keyhold/policy';
import { EXIT } from '../command.js';
import type { KeyholdRun } from '../keyhold-run.js';

const MAX_INPUT_BYTES = 4 * 1024 * 1024;

/** Every error of `policy test` exits 2 (exit 1 means "deny"). */
class UsageError extends CliError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('POLICY_TEST', message, { ...options, exitCode: EXIT.USAGE });
  }
}

async function readSmall(file: string, what: string): Promise<string> {
  const st = await stat(file);
  // SECURITY: size checked before reading (memory exhaustion by a huge input file).
  if (st.size > MAX_INPUT_BYTES) throw new UsageError(`${what} file ${file} is larger than ${MAX_INPUT_BYTES} bytes`);
  return readFile(file, 'utf8');
}

async function readJsonObject(file: string, what: string): Promise<Record<string, unknown>> {
  let v: unknown;
  try {
    v = JSON.parse(await readSmall(file, what));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${what} file ${file} is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError(`${what} file ${file} must hold a JSON object`);
  return v as Record<string, unknown>;
}

function parseQuery(pairs: string[] | undefined): Record<string, string> {
  const q: Record<string, string> = {};
  for (const p of pairs ?? []) {
    const i = p.indexOf('=');
    if (i <= 0) throw new UsageError(`--query ${p}: expected K=V`);
    q[p.slice(0, i)] = p.slice(i + 1);
  }
  return q;
}

/**
 * The policy file as a document, the way the KBS takes an upload: a bare CEL rule is a resource
 * policy; a JSON document may leave out `id` and `type` (and `kind`, given with --kind, or a
 * document with a `rule` is a resource policy).
 */
export function policyDocumentFrom(text: string, kind: string | undefined): unknown {
  if (kind !== undefined && kind !== 'resource' && kind !== 'attestation') throw new UsageError('--kind must be resource or attestation');
  if (!text.trimStart().startsWith('{')) {
    if (kind === 'attestation') throw new UsageError('an attestation policy must be a JSON policy document (see packages/kbs/policies)');
    return { id: 'local', type: 'cel', kind: 'resource', rule: text };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new UsageError(`policy file is neither JSON nor a bare CEL rule: ${(cause as Error).message}`, { cause });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return doc;
  const d = doc as Record<string, unknown>;
  return { id: 'local', type: 'cel', kind: kind ?? d['kind'] ?? ('rule' in d ? 'resource' : 'attestation'), ...d };
}

/**
 * `keyhold policy test`: evaluate a CEL policy locally. Resource policy: input is a saved
 * attestation token (--token, signature NOT checked) or its claims (--claims), and
 * --resource-path. Attestation policy: the verifier's claims (--claims), optional reference values
 * (--reference) and --tee. Exit 0 allow / affirming, 1 deny / not affirming, 2 any error.
 */
export async function testPolicy(o: Record<string, unknown>, run: KeyholdRun): Promise<number> {
  const io = run.io;
  const values = o as { policy: string; kind?: string; token?: string; claims?: string; reference?: string; resourcePath?: string; query?: string[]; tee?: string };
  const json = run.json;
  try {
    const policyText = await readSmall(values.policy, 'policy');
    if (policyText.length > MAX_POLICY_DOCUMENT_CHARS) throw new UsageError('policy file is too large');
    const compiled = compilePolicy(parsePolicyDocument(policyDocumentFrom(policyText, values.kind)));
    if (compiled.kind === 'resource') {
      if ((values.token === undefined) === (values.claims === undefined)) throw new UsageError('a resource policy needs exactly one of --token or --claims');
      if (values.resourcePath === undefined) throw new UsageError('a resource policy needs --resource-path REPO/TYPE/TAG');
      let tokenClaims: Record<string, unknown>;
      if (values.token !== undefined) {
        try {
          tokenClaims = decodeJwt((await readSmall(values.token, 'token')).trim());
        } catch (err) {
          if (err instanceof UsageError) throw err;
          throw new UsageError(`token file ${values.token} is not a compact JWT`);
        }
        if (!json) io.stderr.write('note: the token signature is not verified by policy test\n');
      } else {
        tokenClaims = await readJsonObject(values.claims as string, 'claims');
      }
      const decision = evaluateResourcePolicy(compiled, { tokenClaims, resourcePath: values.resourcePath, query: parseQuery(values.query) });
      if (json) io.stdout.write(`${JSON.stringify(decision)}\n`);
      else io.stdout.write(`${decision.allow ? 'allow' : 'deny'} (policy ${decision.policyId})${decision.reason === undefined ? '' : `: ${decision.reason}`}\n`);
      return decision.allow ? EXIT.OK : EXIT.FAIL;
    }
    if (values.claims === undefined || values.token !== undefined) throw new UsageError('an attestation policy needs --claims FILE (the verifier claims), not --token');
    const claims = await readJsonObject(values.claims, 'claims');
    const reference = values.reference === undefined ? {} : await readJsonObject(values.reference, 'reference');
    for (const [k, v] of Object.entries(reference)) if (!Array.isArray(v)) throw new UsageError(`reference value ${k} must be a list`);
    const appraisal = evaluateAttestationPolicy(compiled, { claims, reference: reference as Record<string, unknown[]>, tee: values.tee ?? 'tpm' });
    if (json) io.stdout.write(`${JSON.stringify(appraisal)}\n`);
    else {
      const vector = Object.entries(appraisal.vector)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      io.stdout.write(`${appraisal.status} (policy ${appraisal.policyId})\n${vector}\n`);
    }
    return appraisal.status === 'affirming' ? EXIT.OK : EXIT.FAIL;
  } catch (err) {
    if (err instanceof PolicyCompileError) {
      for (const i of err.issues) io.stderr.write(`keyhold policy test: ${values.policy}: ${i.rule} ${i.line}:${i.column}: ${i.message}\n`);
      return EXIT.USAGE;
    }
    if (err instanceof PolicyError) {
      const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
      throw new UsageError(`${err.message}${cause}`, { cause: err });
    }
    if (err instanceof CliError) throw err;
    const file = describeFileError(err);
    if (file !== undefined) throw new UsageError(file.message, { cause: err });
    throw err;
  }
}
