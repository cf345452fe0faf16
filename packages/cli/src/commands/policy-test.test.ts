import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ATTESTATION_POLICY, AFFIRMING_RESOURCE_POLICY } from '@keyhold/policy';
import type { CommandIo } from '../command.js';
import { runKeyhold } from '../program.js';

/** `keyhold policy test ...` in process, with an empty environment. */
const run = (argv: string[], io: CommandIo, now?: () => Date): Promise<number> => runKeyhold([...['policy', 'test'], ...argv], io, {}, now !== undefined ? { now } : {});

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}
async function cli(argv: string[]) {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await run(argv, { stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

let dir: string;
const f = (name: string) => path.join(dir, name);
const claims = (status: string) => ({ submods: { cpu0: { 'ear.status': status, 'ear.veraison.annotated-evidence': { init_data_claims: { workload_id: 'w1' } } } } });

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keyhold-policy-test-'));
  await writeFile(f('affirming.json'), JSON.stringify(AFFIRMING_RESOURCE_POLICY));
  await writeFile(f('workload.json'), JSON.stringify({ id: 'w', type: 'cel', kind: 'resource', rule: 'init_data_claims.workload_id == "w1" && repository == "r"' }));
  await writeFile(f('broken.json'), JSON.stringify({ id: 'b', type: 'cel', kind: 'resource', rule: 'ear.status ==\n  "affirming" && nope' }));
  await writeFile(f('default-attestation.json'), JSON.stringify(DEFAULT_ATTESTATION_POLICY));
  await writeFile(f('ok-claims.json'), JSON.stringify(claims('affirming')));
  await writeFile(f('warn-claims.json'), JSON.stringify(claims('warning')));
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await writeFile(f('token.jwt'), await new SignJWT(claims('affirming')).setProtectedHeader({ alg: 'ES256' }).sign(privateKey));
  await writeFile(f('tpm-claims.json'), JSON.stringify({ tpm: { ak_public: 'ak', pcr07: '07'.repeat(32) } }));
  await writeFile(f('good-ref.json'), JSON.stringify({ pcr07: ['07'.repeat(32)] }));
  await writeFile(f('bad-ref.json'), JSON.stringify({ pcr07: ['00'.repeat(32)] }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('keyhold policy test', () => {
  it('allows (exit 0) and denies (exit 1) with a resource policy and saved claims', async () => {
    expect(await cli(['--policy', f('affirming.json'), '--claims', f('ok-claims.json'), '--resource-path', 'r/k/1'])).toMatchObject({ code: 0, stdout: 'allow (policy affirming)\n' });
    const deny = await cli(['--policy', f('affirming.json'), '--claims', f('warn-claims.json'), '--resource-path', 'r/k/1', '--json']);
    expect(deny.code).toBe(1);
    expect(JSON.parse(deny.stdout)).toEqual({ allow: false, policyId: 'affirming', version: 0, reason: 'policy rule evaluated to false' });
  });

  it('takes a bare CEL rule as a resource policy, as the KBS does', async () => {
    await writeFile(f('bare.cel'), 'ear.status == "affirming" &&\n  repository == "r"\n');
    expect(await cli(['--policy', f('bare.cel'), '--claims', f('ok-claims.json'), '--resource-path', 'r/k/1'])).toMatchObject({ code: 0, stdout: 'allow (policy local)\n' });
    expect((await cli(['--policy', f('bare.cel'), '--claims', f('ok-claims.json'), '--resource-path', 'other/k/1'])).code).toBe(1);
    // A JSON document without id/type/kind: a resource policy when it has a rule.
    await writeFile(f('doc-no-id.json'), JSON.stringify({ rule: 'repository == "r"' }));
    expect((await cli(['--policy', f('doc-no-id.json'), '--claims', f('ok-claims.json'), '--resource-path', 'r/k/1'])).code).toBe(0);
    // A bare rule cannot be an attestation policy.
    const att = await cli(['--policy', f('bare.cel'), '--kind', 'attestation', '--claims', f('tpm-claims.json')]);
    expect(att.code).toBe(2);
    expect(att.stderr).toMatch(/attestation policy must be a JSON policy document/);
  });

  it('reads a saved token and notes that its signature is not checked', async () => {
    const r = await cli(['--policy', f('workload.json'), '--token', f('token.jwt'), '--resource-path', 'r/k/1']);
    expect(r).toMatchObject({ code: 0, stdout: 'allow (policy w)\n' });
    expect(r.stderr).toMatch(/not verified/);
    expect((await cli(['--policy', f('workload.json'), '--token', f('token.jwt'), '--resource-path', 'other/k/1'])).code).toBe(1);
  });

  it('reports a compile error with its position (exit 2)', async () => {
    const r = await cli(['--policy', f('broken.json'), '--claims', f('ok-claims.json'), '--resource-path', 'r/k/1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("rule 2:18: undeclared reference to 'nope'");
  });

  it('evaluates an attestation policy with reference values', async () => {
    const ok = await cli(['--policy', f('default-attestation.json'), '--claims', f('tpm-claims.json'), '--reference', f('good-ref.json')]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^affirming \(policy default\)\ninstance-identity=2 configuration=2/);
    const bad = await cli(['--policy', f('default-attestation.json'), '--claims', f('tpm-claims.json'), '--reference', f('bad-ref.json'), '--json']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ status: 'contraindicated', vector: { configuration: 96 } });
  });

  it('refuses bad usage with exit 2', async () => {
    expect((await cli([])).code).toBe(2);
    expect((await cli(['--policy', f('affirming.json'), '--claims', f('ok-claims.json')])).stderr).toMatch(/--resource-path/);
    expect((await cli(['--policy', f('affirming.json'), '--claims', f('ok-claims.json'), '--token', f('token.jwt'), '--resource-path', 'r/k/1'])).code).toBe(2);
    expect((await cli(['--policy', f('affirming.json'), '--claims', f('ok-claims.json'), '--resource-path', '../etc/passwd'])).code).toBe(2);
    expect((await cli(['--policy', f('missing.json'), '--claims', f('ok-claims.json'), '--resource-path', 'r/k/1'])).code).toBe(2);
    expect((await cli(['--policy', f('token.jwt'), '--claims', f('ok-claims.json'), '--resource-path', 'r/k/1'])).code).toBe(2);
    expect((await cli(['--bogus'])).code).toBe(2);
  });
});
