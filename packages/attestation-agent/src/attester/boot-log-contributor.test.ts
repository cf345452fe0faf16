import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigFrom } from '../config.js';
import { AgentError } from '../errors.js';
import { loadOrCreateAk } from '../tpm/ak-store.js';
import { createSoftwareTpm } from '../tpm/software-tpm.js';
import { BootLogContributor, readBounded } from './boot-log-contributor.js';
import { TpmAttester } from './tpm-attester.js';

let dir: string;
let eventLog: string;
let imaLog: string;
const eventBytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x80, 0x7f]);
const imaText = '10 0000000000000000000000000000000000000000 ima-ng sha256:00 /é\n';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-bootlog-'));
  eventLog = join(dir, 'binary_bios_measurements');
  imaLog = join(dir, 'ascii_runtime_measurements');
  await writeFile(eventLog, eventBytes);
  await writeFile(imaLog, imaText);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('BootLogContributor', () => {
  it('sends the event log as standard base64 and the IMA log as text, beside Trustee’s fields', async () => {
    const tpm = createSoftwareTpm();
    const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
    const attester = new TpmAttester(tpm, ak, [new BootLogContributor({ eventLogFile: eventLog, imaLogFile: imaLog })]);
    const { primary } = await attester.evidence({ reportData: new Uint8Array(48), challengeExtra: {} } as never);
    const ev = primary as Record<string, unknown>;
    expect(ev['event_log']).toBe(eventBytes.toString('base64'));
    expect(ev['ima_log']).toBe(imaText);
    expect(Object.keys(ev).sort()).toEqual(['ak_public', 'event_log', 'ima_log', 'tpm_quote']);
    await tpm.close();
  });

  it('adds nothing when no file is configured', async () => {
    const c = new BootLogContributor({});
    expect(await c.evidenceFields()).toEqual({});
    expect(await c.evidenceFieldsAfterQuote()).toEqual({});
  });

  it('refuses a missing or oversized file with a typed error', async () => {
    await expect(new BootLogContributor({ eventLogFile: join(dir, 'nope') }).evidenceFields()).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(new BootLogContributor({ imaLogFile: imaLog, maxImaLogBytes: 8 }).evidenceFieldsAfterQuote()).rejects.toBeInstanceOf(AgentError);
    await expect(readBounded(eventLog, eventBytes.length - 1, 'event log')).rejects.toThrow(/larger than 6 bytes/);
    expect(await readBounded(eventLog, eventBytes.length, 'event log')).toEqual(eventBytes);
  });
});

describe('agent config: --event-log / --ima-log', () => {
  it('takes named files, --no-… disables, simulators get no default', () => {
    const c = agentConfigFrom({ 'event-log': eventLog, 'ima-log': imaLog }, {});
    expect(c.eventLogFile).toBe(eventLog);
    expect(c.imaLogFile).toBe(imaLog);
    const none = agentConfigFrom({ 'no-event-log': true, 'no-ima-log': true }, {});
    expect(none.eventLogFile).toBeUndefined();
    expect(none.imaLogFile).toBeUndefined();
    const sim = agentConfigFrom({ tcti: 'swtpm:host=127.0.0.1,port=2321' }, {});
    expect(sim.eventLogFile).toBeUndefined();
    expect(sim.imaLogFile).toBeUndefined();
    expect(() => agentConfigFrom({ 'event-log': eventLog, 'no-event-log': true }, {})).toThrow(/exclude each other/);
  });
});
