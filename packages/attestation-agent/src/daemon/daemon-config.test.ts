import { describe, expect, it } from 'vitest';
import { daemonConfigFrom } from './daemon-config.js';

describe('keyhold-agent run flags', () => {
  it('defaults, durations and paths', () => {
    expect(daemonConfigFrom({})).toMatchObject({ intervalMs: 60_000, deleteKeyOnBan: false, nodeCertDir: undefined, logLevel: 'info' });
    expect(daemonConfigFrom({ interval: '2s' }).intervalMs).toBe(2000);
    expect(daemonConfigFrom({ interval: '5m', nodeCertDir: 'certs', deleteKeyOnBan: true, healthListen: '127.0.0.1:0' })).toMatchObject({ intervalMs: 300_000, deleteKeyOnBan: true, healthListen: { host: '127.0.0.1', port: 0 } });
    expect(daemonConfigFrom({ nodeCertDir: 'certs' }).nodeCertDir).toMatch(/^\/.*\/certs$/);
  });

  it('refuses bad flags as usage errors', () => {
    for (const flags of [{ interval: '60' }, { interval: '0s' }, { interval: '500ms' }, { interval: '2d' }, { interval: 'soon' }, { deleteKeyOnBan: true }, { healthListen: '0.0.0.0:80' }, { logLevel: 'loud' }]) {
      expect(() => daemonConfigFrom(flags), JSON.stringify(flags)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    }
  });
});
