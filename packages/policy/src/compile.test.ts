import { describe, expect, it } from 'vitest';
import { compileAttestationPolicy, compilePolicy, compileResourcePolicy } from './compile.js';
import { PolicyCompileError, PolicyError } from './errors.js';
import { DEFAULT_ATTESTATION_POLICY, DEFAULT_RESOURCE_POLICY } from './defaults.js';

const resource = (rule: string) => ({ id: 'p', type: 'cel', kind: 'resource', rule });

function compileIssue(doc: unknown) {
  try {
    compilePolicy(doc);
  } catch (e) {
    expect(e).toBeInstanceOf(PolicyCompileError);
    const err = e as PolicyCompileError;
    expect(err.code).toBe('POLICY_COMPILE_FAILED');
    return err.issues;
  }
  throw new Error('expected a compile error');
}

describe('compile', () => {
  it('compiles the built-in defaults', () => {
    expect(compileAttestationPolicy(DEFAULT_ATTESTATION_POLICY).id).toBe('default');
    expect(compileResourcePolicy(DEFAULT_RESOURCE_POLICY).version).toBe(0);
  });

  it('reports a syntax error with line and column', () => {
    // `=` is not a CEL operator: the parser stops at it (line 2, column 14).
    const [issue] = compileIssue(resource('ear.status == "affirming" &&\n  repository = "x"'));
    expect(issue).toMatchObject({ rule: 'rule', line: 2, column: 14 });
    expect(issue?.message).toMatch(/^syntax error: found =/);
  });

  it('refuses an undeclared variable at its position', () => {
    const [issue] = compileIssue(resource('ear.status == "affirming" && secrets.x == 1'));
    expect(issue).toMatchObject({ rule: 'rule', line: 1, column: 30, offset: 29 });
    expect(issue?.message).toContain("undeclared reference to 'secrets'");
  });

  it('refuses an unknown function and a call with no matching overload', () => {
    expect(compileIssue(resource('exec(repository)'))[0]?.message).toContain("function 'exec'");
    const [issue] = compileIssue(resource('repository.startsWith(1)'));
    expect(issue?.message).toContain('no matching overload for string.startsWith(int)');
    expect(issue?.column).toBe(11); // the method call, at its '.'
  });

  it('refuses a resource rule that is not a bool', () => {
    expect(compileIssue(resource('repository'))[0]?.message).toBe('rule must evaluate to bool, not string');
    expect(compileIssue(resource('size(query)'))[0]?.message).toBe('rule must evaluate to bool, not int');
  });

  it('refuses field access on a scalar, message construction, and bad regular expressions', () => {
    expect(compileIssue(resource('plugin.name == "x"'))[0]?.message).toContain("type 'string' has no field 'name'");
    expect(compileIssue(resource('google.protobuf.BoolValue{value: true}.value'))[0]?.message).toMatch(/not supported|undeclared/);
    expect(compileIssue(resource('repository.matches("a+(")'))[0]?.message).toContain('invalid regular expression');
  });

  it('lists every bad rule of an attestation policy', () => {
    const issues = compileIssue({
      id: 'a',
      type: 'cel',
      kind: 'attestation',
      rules: { status: '"affirming" + 1', vector: { hardware: '"two"', configuration: 'claims.tpm.pcr08 in reference.pcr08 ? 2 : 96' } },
    });
    expect(issues.map((i) => i.rule)).toEqual(['vector.hardware', 'status']);
    expect(issues[0]?.message).toBe('rule must evaluate to int, not string');
  });

  it('lets only the status rule see the vector', () => {
    const issues = compileIssue({ id: 'a', type: 'cel', kind: 'attestation', rules: { status: '"none"', vector: { hardware: 'vector.hardware' } } });
    expect(issues[0]?.message).toContain("undeclared reference to 'vector'");
  });

  it('refuses hostile nesting with a typed error', () => {
    const deep = '('.repeat(2000) + 'true' + ')'.repeat(2000);
    expect(() => compilePolicy(resource(deep.slice(0, 16 * 1024)))).toThrow(PolicyError);
  });

  it('refuses malformed documents', () => {
    const bad = (doc: unknown) => {
      try {
        compilePolicy(doc);
      } catch (e) {
        return (e as PolicyError).code;
      }
      return 'accepted';
    };
    expect(bad({ ...resource('true'), type: 'rego' })).toBe('POLICY_INVALID_DOCUMENT');
    expect(bad({ ...resource('true'), rulez: 'false' })).toBe('POLICY_INVALID_DOCUMENT');
    expect(bad({ ...resource('true'), id: '../x' })).toBe('POLICY_INVALID_DOCUMENT');
    expect(bad(resource('x'.repeat(16 * 1024 + 1)))).toBe('POLICY_INVALID_DOCUMENT');
    expect(bad('{not json')).toBe('POLICY_INVALID_DOCUMENT');
    expect(bad('x'.repeat(300 * 1024))).toBe('POLICY_INVALID_DOCUMENT');
    expect(bad({ id: 'a', type: 'cel', kind: 'attestation', rules: { status: '"none"', vector: { hardwear: '2' } } })).toBe('POLICY_INVALID_DOCUMENT');
    expect(bad(JSON.stringify({ ...resource('true'), version: 3 }))).toBe('accepted');
  });

  it('refuses a document of the other kind', () => {
    expect(() => compileAttestationPolicy(resource('true'))).toThrow(/expected an attestation policy/);
    expect(() => compileResourcePolicy(DEFAULT_ATTESTATION_POLICY)).toThrow(/expected a resource policy/);
  });
});
