/**
 * `keyhold config <action>`: the KBS admin API with kbs-client's verbs (set-resource,
 * set-resource-policy, set-attestation-policy, set-sample-reference-value, get-reference-values)
 * plus Keyhold's listings and deletions. Deliberate differences from kbs-client are listed in the
 * README ("keyhold and kbs-client").
 */
import { readFile } from 'node:fs/promises';
import { UsageError } from '@keyhold/command-line';
import { AFFIRMING_RESOURCE_POLICY, ALLOW_ALL_RESOURCE_POLICY, DEFAULT_RESOURCE_POLICY, DENY_ALL_RESOURCE_POLICY } from '@keyhold/policy';
import { isValidResourceSegment, parseResourcePath } from '@keyhold/protocol';
import { EXIT } from '../command.js';
import type { KeyholdRun } from '../keyhold-run.js';

function b64url(text: string | Uint8Array): string {
  return Buffer.from(text).toString('base64url');
}

function repositoryOption(r: string | undefined): string | undefined {
  if (r === undefined) return undefined;
  if (!isValidResourceSegment(r)) throw new UsageError('--repository must match ^[A-Za-z0-9_-][A-Za-z0-9_.-]*$');
  return r;
}

function resourceUrl(pathText: string, prefix = '/kbs/v0/resource'): string {
  let path;
  try {
    path = parseResourcePath(pathText.replace(/^\/+/, ''));
  } catch (err) {
    throw new UsageError(`--path ${JSON.stringify(pathText.slice(0, 200))}: ${(err as Error).message}`, { hint: 'write REPO/TYPE/TAG, e.g. default/key/app1' });
  }
  return `${prefix}/${path.repository}/${path.type}/${path.tag}`;
}

/** A confirmation: a line on stderr, or the KBS's answer as JSON on stdout with --json. */
function confirm(run: KeyholdRun, human: string, json: unknown): void {
  if (run.json) run.io.stdout.write(`${JSON.stringify(json)}\n`);
  else run.io.stderr.write(`${human}\n`);
}

/** Data (listings, documents) goes to stdout either way: indented, or one line with --json. */
function print(run: KeyholdRun, json: unknown): void {
  run.io.stdout.write(`${JSON.stringify(json, null, run.json ? undefined : 2)}\n`);
}

export async function setResource(o: { path: string; resourceFile: string }, run: KeyholdRun): Promise<number> {
  const target = resourceUrl(o.path);
  const bytes = await readFile(o.resourceFile);
  const res = await (await run.admin()).call('POST', target, { bytes });
  confirm(run, `stored ${o.path} (${bytes.length} bytes)`, res ?? { path: o.path });
  return EXIT.OK;
}

export async function deleteResource(o: { path: string }, run: KeyholdRun): Promise<number> {
  await (await run.admin()).call('DELETE', resourceUrl(o.path));
  confirm(run, `deleted ${o.path}`, { deleted: o.path });
  return EXIT.OK;
}

export async function listResources(o: { repository?: string }, run: KeyholdRun): Promise<number> {
  const repo = repositoryOption(o.repository);
  print(run, await (await run.admin()).call('GET', repo === undefined ? '/kbs/v0/resources' : `/kbs/v0/resources/${repo}`));
  return EXIT.OK;
}

export async function getResourceVersions(o: { path: string }, run: KeyholdRun): Promise<number> {
  print(run, await (await run.admin()).call('GET', resourceUrl(o.path, '/kbs/v0/resources')));
  return EXIT.OK;
}

export async function setResourcePolicy(
  o: { policyFile?: string; allowAll?: boolean; denyAll?: boolean; affirming?: boolean; default?: boolean; repository?: string },
  run: KeyholdRun,
): Promise<number> {
  const repo = repositoryOption(o.repository);
  const builtIns = [
    [o.allowAll, ALLOW_ALL_RESOURCE_POLICY],
    [o.denyAll, DENY_ALL_RESOURCE_POLICY],
    [o.affirming, AFFIRMING_RESOURCE_POLICY],
    [o.default, DEFAULT_RESOURCE_POLICY],
  ] as const;
  const chosen = builtIns.filter(([on]) => on === true);
  if (chosen.length + (o.policyFile !== undefined ? 1 : 0) !== 1) throw new UsageError('set-resource-policy needs exactly one of --policy-file, --allow-all, --deny-all, --affirming, --default');
  const text = o.policyFile !== undefined ? await readFile(o.policyFile, 'utf8') : JSON.stringify(chosen[0]?.[1]);
  const res = await (await run.admin()).call('POST', repo === undefined ? '/kbs/v0/resource-policy' : `/kbs/v0/resource-policy/${repo}`, { json: { policy: b64url(text) } });
  const r = res as { policy_id?: string; version?: number };
  confirm(run, `resource policy ${String(r.policy_id)} version ${String(r.version)} set ${repo === undefined ? 'globally' : `for repository ${repo}`}`, res);
  return EXIT.OK;
}

export async function getResourcePolicy(o: { repository?: string }, run: KeyholdRun): Promise<number> {
  const repo = repositoryOption(o.repository);
  print(run, await (await run.admin()).call('GET', repo === undefined ? '/kbs/v0/resource-policy' : `/kbs/v0/resource-policy/${repo}`));
  return EXIT.OK;
}

export async function deleteResourcePolicy(o: { repository?: string }, run: KeyholdRun): Promise<number> {
  const repo = repositoryOption(o.repository);
  await (await run.admin()).call('DELETE', repo === undefined ? '/kbs/v0/resource-policy' : `/kbs/v0/resource-policy/${repo}`);
  confirm(run, `resource policy ${repo === undefined ? '(global)' : `of ${repo}`} deleted`, { deleted: repo ?? 'global' });
  return EXIT.OK;
}

/**
 * The policy document uploaded for `--id`: the id the user gave wins over the one in the file (the
 * KBS refuses a policy_id that differs from the document's), so the policy is stored under the id
 * the user named — and the CLI says when it replaced the file's.
 */
export function attestationDocumentFor(text: string, id: string | undefined): { text: string; replacedId?: string } {
  if (id === undefined || !text.trimStart().startsWith('{')) return { text };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { text }; // the KBS names the JSON error
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return { text };
  const current = (doc as { id?: unknown }).id;
  if (current === id) return { text };
  return { text: JSON.stringify({ ...(doc as Record<string, unknown>), id }), ...(typeof current === 'string' ? { replacedId: current } : {}) };
}

export async function setAttestationPolicy(o: { policyFile: string; id?: string; type: string }, run: KeyholdRun): Promise<number> {
  const { text, replacedId } = attestationDocumentFor(await readFile(o.policyFile, 'utf8'), o.id);
  const res = await (await run.admin()).call('POST', '/kbs/v0/attestation-policy', { json: { type: o.type, ...(o.id !== undefined ? { policy_id: o.id } : {}), policy: b64url(text) } });
  const r = res as { policy_id?: string; version?: number; active?: boolean };
  if (replacedId !== undefined && !run.json) run.io.stderr.write(`note: ${o.policyFile} says id "${replacedId}"; stored under --id "${o.id as string}"\n`);
  confirm(
    run,
    `attestation policy stored under id "${String(r.policy_id)}", version ${String(r.version)}${r.active === false ? " (not the active one: the KBS appraises with [policy] attestation_policy)" : r.active === true ? ' (active)' : ''}`,
    res,
  );
  return EXIT.OK;
}

export async function getAttestationPolicy(o: { id?: string }, run: KeyholdRun): Promise<number> {
  print(run, await (await run.admin()).call('GET', o.id === undefined ? '/kbs/v0/attestation-policy' : `/kbs/v0/attestation-policy/${encodeURIComponent(o.id)}`));
  return EXIT.OK;
}

export async function deleteAttestationPolicy(o: { id: string }, run: KeyholdRun): Promise<number> {
  await (await run.admin()).call('DELETE', `/kbs/v0/attestation-policy/${encodeURIComponent(o.id)}`);
  confirm(run, `attestation policy ${o.id} deleted`, { deleted: o.id });
  return EXIT.OK;
}

export async function listPolicies(run: KeyholdRun): Promise<number> {
  print(run, await (await run.admin()).call('GET', '/kbs/v0/policies'));
  return EXIT.OK;
}

export async function setReferenceValue(o: { name: string; value: string[]; asInteger?: boolean; asBool?: boolean; asSingleValue?: boolean }, run: KeyholdRun): Promise<number> {
  // kbs-client can send integers, booleans and bare values to Trustee's RVPS; the Keyhold KBS keeps
  // every reference value as a list of strings (policies compare strings), so these are refused
  // rather than silently sent as strings.
  if (o.asInteger === true || o.asBool === true || o.asSingleValue === true) {
    throw new UsageError(`--as-integer, --as-bool and --as-single-value are not supported: Keyhold reference values are lists of strings`, {
      hint: `send the value as a string (e.g. --value ${o.value[0] ?? 'V'}); policies read it as reference.${o.name.replace(/^tpm_/, '')}`,
    });
  }
  if (o.value.length === 0) throw new UsageError('give at least one value');
  const payload = Buffer.from(JSON.stringify({ [o.name]: o.value })).toString('base64');
  const res = await (await run.admin()).call('POST', '/kbs/v0/reference-value', { json: { version: '0.1.0', type: 'sample', payload } });
  confirm(run, `reference value ${o.name} set (${o.value.length} value${o.value.length === 1 ? '' : 's'})`, res ?? { names: [o.name] });
  return EXIT.OK;
}

export async function getReferenceValues(o: { name?: string }, run: KeyholdRun): Promise<number> {
  print(run, await (await run.admin()).call('GET', o.name === undefined ? '/kbs/v0/reference-value' : `/kbs/v0/reference-value/${encodeURIComponent(o.name)}`));
  return EXIT.OK;
}

export async function deleteReferenceValue(o: { name: string | undefined }, run: KeyholdRun): Promise<number> {
  if (o.name === undefined) throw new UsageError('delete-reference-value needs --name NAME');
  await (await run.admin()).call('DELETE', `/kbs/v0/reference-value/${encodeURIComponent(o.name)}`);
  confirm(run, `reference value ${o.name} deleted`, { deleted: o.name });
  return EXIT.OK;
}
