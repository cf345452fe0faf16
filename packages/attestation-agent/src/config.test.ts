import { describe, expect, it } from 'vitest';
import { AgentError } from './errors.js';
import { agentConfigFrom } from './config.js';

const refusal = (values: Record<string, unknown>): string => {
  try {
    agentConfigFrom(values, {});
    return 'accepted';
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return (err as AgentError).message;
  }
};

describe('tee key options (--tee-key, --seal-to-pcrs, --cache-dir)', () => {
  it('defaults to a software EC key, unsealed, no cache', () => {
    const c = agentConfigFrom({}, {});
    expect(c).toMatchObject({ teeKey: 'ec', sealToPcrs: [], cacheDir: undefined });
  });

  it('takes TPM keys, a PCR list or all, and an absolute cache dir', () => {
    expect(agentConfigFrom({ 'tee-key': 'tpm-rsa', 'seal-to-pcrs': '7,0, 2' }, {})).toMatchObject({ teeKey: 'tpm-rsa', sealToPcrs: [0, 2, 7] });
    expect(agentConfigFrom({ 'tee-key': 'tpm-ecc', 'seal-to-pcrs': 'all' }, {}).sealToPcrs).toHaveLength(24);
    expect(agentConfigFrom({ 'tee-key': 'tpm-ecc', 'cache-dir': 'rel/cache' }, {}).cacheDir).toMatch(/^\/.*rel\/cache$/);
  });

  it('refuses unknown keys, bad PCR lists, and sealing or caching a software key', () => {
    expect(refusal({ 'tee-key': 'tpm' })).toMatch(/--tee-key must be/);
    for (const list of ['24', '1,1', 'x', '', '0,-1', '1.5']) expect(refusal({ 'tee-key': 'tpm-rsa', 'seal-to-pcrs': list }), list).toMatch(/--seal-to-pcrs must be/);
    expect(refusal({ 'seal-to-pcrs': '0' })).toMatch(/needs --tee-key tpm-rsa or tpm-ecc/);
    expect(refusal({ 'tee-key': 'rsa', 'cache-dir': '/tmp/c' })).toMatch(/needs --tee-key tpm-rsa or tpm-ecc/);
  });
});
