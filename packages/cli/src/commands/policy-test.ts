import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { decodeJwt } from 'jose';
import {
  PolicyCompileError,
  PolicyError,
  compilePolicy,
  evaluateAttestationPolicy,
  evaluateResourcePolicy,
  parsePolicyDocument,
  MAX_POLICY_DOCUMENT_CHARS,
} from '@keyhold/policy';
import { EXIT, type CommandIo } from '../command.js';

const USAGE = `Usage:
  keyhold policy test --policy FILE (--token FILE | --claims FILE) [--resource-path REPO/TYPE/TAG]
                      [--query K=V]... [--reference FILE] [--tee TEE] [--json]
      Evaluates a CEL policy locally.
      Resource policy: input is a saved attestation token (--token, a compact JWT whose signature is
        NOT checked here) or its claims as JSON (--claims), and --resource-path (required).
      Attestation policy: input is the verifier's claims as JSON (--claims), optional reference
        values (--reference, JSON {"name": [values]}) and --tee (default tpm).
      Exit status: 0 allow / affirming, 1 deny / not affirming, 2 error (usage, file, compile error).`;

const MAX_INPUT_BYTES = 4 * 1024 * 1024;

class UsageError extends Error {}

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

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let values: ReturnType<typeof parse>['values'];
  const parse = (args: string[]) =>
    parseArgs({
      args,
      options: {
        policy: { type: 'string' },
        token: { type: 'string' },
        claims: { type: 'string' },
        reference: { type: 'string' },
        'resource-path': { type: 'string' },
        query: { type: 'string', multiple: true },
        tee: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  try {
    ({ values } = parse(argv));
  } catch (err) {
    io.stderr.write(`keyhold policy test: ${(err as Error).message}\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  if (values.help === true) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT.OK;
  }
  try {
    if (values.policy === undefined) throw new UsageError('--policy FILE is required');
    const policyText = await readSmall(values.policy, 'policy');
    if (policyText.length > MAX_POLICY_DOCUMENT_CHARS) throw new UsageError('policy file is too large');
    const compiled = compilePolicy(parsePolicyDocument(policyText));
    if (compiled.kind === 'resource') {
      if ((values.token === undefined) === (values.claims === undefined)) throw new UsageError('a resource policy needs exactly one of --token or --claims');
      if (values['resource-path'] === undefined) throw new UsageError('a resource policy needs --resource-path REPO/TYPE/TAG');
      let tokenClaims: Record<string, unknown>;
      if (values.token !== undefined) {
        try {
          tokenClaims = decodeJwt((await readSmall(values.token, 'token')).trim());
        } catch (err) {
          if (err instanceof UsageError) throw err;
          throw new UsageError(`token file ${values.token} is not a compact JWT`);
        }
        if (values.json !== true) io.stderr.write('note: the token signature is not verified by policy test\n');
      } else {
        tokenClaims = await readJsonObject(values.claims as string, 'claims');
      }
      const decision = evaluateResourcePolicy(compiled, { tokenClaims, resourcePath: values['resource-path'], query: parseQuery(values.query) });
      if (values.json === true) io.stdout.write(`${JSON.stringify(decision)}\n`);
      else io.stdout.write(`${decision.allow ? 'allow' : 'deny'} (policy ${decision.policyId})${decision.reason === undefined ? '' : `: ${decision.reason}`}\n`);
      return decision.allow ? EXIT.OK : EXIT.FAIL;
    }
    if (values.claims === undefined || values.token !== undefined) throw new UsageError('an attestation policy needs --claims FILE (the verifier claims), not --token');
    const claims = await readJsonObject(values.claims, 'claims');
    const reference = values.reference === undefined ? {} : await readJsonObject(values.reference, 'reference');
    for (const [k, v] of Object.entries(reference)) if (!Array.isArray(v)) throw new UsageError(`reference value ${k} must be a list`);
    const appraisal = evaluateAttestationPolicy(compiled, { claims, reference: reference as Record<string, unknown[]>, tee: values.tee ?? 'tpm' });
    if (values.json === true) io.stdout.write(`${JSON.stringify(appraisal)}\n`);
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
      io.stderr.write(`keyhold policy test: ${err.message}${cause}\n`);
      return EXIT.USAGE;
    }
    const msg = err instanceof UsageError ? err.message : err instanceof Error ? err.message : String(err);
    io.stderr.write(`keyhold policy test: ${msg}\n`);
    return EXIT.USAGE;
  }
}
