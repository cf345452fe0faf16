// KEKs through the daemon's resource socket (a real socket server with a stand-in fetch; the whole
// chain with the KBS and swtpm is in e2e/resident-agent.test.ts): an unwrap works, and each refusal
// of the daemon becomes the key-provider code a direct fetch would give.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePrivateOptions, wrapAnnotationPacket } from '@keyhold/ocicrypt';
import { AgentError } from '../errors.js';
import { KbsClientError } from '../kbs-client/errors.js';
import { startStandInSocket } from '../resource-socket/stand-in-socket.test-support.js';
import { socketKekSource } from './socket-kek-source.js';
import { createUnwrapService } from './unwrap-service.js';

const kek = randomBytes(32);
const optsData = encodePrivateOptions({ symkey: randomBytes(32), digest: `sha256:${'cd'.repeat(32)}`, nonce: randomBytes(16) });
let standIn: Awaited<ReturnType<typeof startStandInSocket>>;
beforeAll(async () => {
  standIn = await startStandInSocket(async (r) => {
    if (r.tag === 'app') return Buffer.from(kek);
    if (r.tag === 'denied') throw new KbsClientError('POLICY_DENY', 'denied (PolicyDeny)', { status: 403 });
    if (r.tag === 'tpm') throw new AgentError('TPM_UNAVAILABLE', 'no TPM');
    throw new KbsClientError('RESOURCE_NOT_FOUND', 'no such resource (ResourceNotFound)', { status: 404 });
  });
});
afterAll(() => standIn.close());

const unwrap = (tag: string, path = standIn.socket.path) => createUnwrapService(socketKekSource(path)).unwrapPacket(wrapAnnotationPacket(optsData, { kid: `kbs:///default/image-kek/${tag}`, kek }));

describe('keyprovider --resource-socket', () => {
  it('unwraps with a KEK the daemon fetched', async () => {
    expect(Buffer.from(await unwrap('app'))).toEqual(Buffer.from(optsData));
  });

  it('keeps the meaning of each refusal', async () => {
    await expect(unwrap('absent')).rejects.toMatchObject({ code: 'KEK_NOT_FOUND' });
    await expect(unwrap('denied')).rejects.toMatchObject({ code: 'KEK_RELEASE_DENIED' });
    await expect(unwrap('tpm')).rejects.toMatchObject({ code: 'ATTESTER_UNAVAILABLE' });
    await expect(unwrap('app', join(standIn.dir, 'absent.sock'))).rejects.toMatchObject({ code: 'KBS_UNAVAILABLE', message: expect.stringMatching(/AGENT_UNREACHABLE/) });
  });
});
