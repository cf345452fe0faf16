import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodePrivateOptions } from '../layer/options.js';
import { wrapAnnotationPacket } from './annotation-packet.js';
import { keyProviderAnnotation, keyProviderRecipient, keyProviderUnwrapper } from './key-provider.js';

const kid = 'kbs:///default/image-kek/app1';
const kek = randomBytes(32);
const optsData = encodePrivateOptions({ symkey: randomBytes(32), digest: 'sha256:' + '1'.repeat(64), nonce: randomBytes(16) });
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

describe('key provider recipient and unwrapper', () => {
  it('uses org.opencontainers.image.enc.keys.provider.attestation-agent by default', async () => {
    const r = keyProviderRecipient({ kid, kek });
    expect(r.scheme).toBe('provider.attestation-agent');
    const annotation = keyProviderAnnotation('attestation-agent');
    expect(annotation).toBe('org.opencontainers.image.enc.keys.provider.attestation-agent');
    const unwrap = keyProviderUnwrapper({ getKek: async () => Buffer.from(kek) });
    expect(Buffer.from(await unwrap({ [annotation]: b64(await r.wrap(optsData)) })).equals(optsData)).toBe(true);
  });

  it('tries each comma-separated packet until one unwraps', async () => {
    const other = wrapAnnotationPacket(optsData, { kid: 'kbs:///default/other/1', kek: randomBytes(32) });
    const mine = wrapAnnotationPacket(optsData, { kid, kek });
    const unwrap = keyProviderUnwrapper({ getKek: async (k) => (k === kid ? Buffer.from(kek) : randomBytes(32)) });
    expect(Buffer.from(await unwrap({ [keyProviderAnnotation('attestation-agent')]: `${b64(other)},${b64(mine)}` })).equals(optsData)).toBe(true);
  });

  it('reports the first failure when none unwraps, and NO_WRAPPED_KEY without its annotation', async () => {
    const unwrap = keyProviderUnwrapper({ getKek: async () => randomBytes(32) });
    const value = b64(wrapAnnotationPacket(optsData, { kid, kek }));
    await expect(unwrap({ [keyProviderAnnotation('attestation-agent')]: value })).rejects.toMatchObject({ code: 'PACKET_UNWRAP_FAILED' });
    await expect(unwrap({ 'org.opencontainers.image.enc.keys.provider.other': value })).rejects.toMatchObject({ code: 'NO_WRAPPED_KEY' });
    await expect(unwrap({ [keyProviderAnnotation('attestation-agent')]: Array(65).fill(value).join(',') })).rejects.toMatchObject({ code: 'NO_WRAPPED_KEY' });
  });

  it('propagates the resolver’s own errors (e.g. a denied KBS release)', async () => {
    class Denied extends Error {}
    const unwrap = keyProviderUnwrapper({ getKek: async () => Promise.reject(new Denied('policy')) });
    await expect(unwrap({ [keyProviderAnnotation('attestation-agent')]: b64(wrapAnnotationPacket(optsData, { kid, kek })) })).rejects.toBeInstanceOf(Denied);
  });

  it('rejects bad provider names', () => {
    expect(() => keyProviderAnnotation('a,b')).toThrow(TypeError);
    expect(() => keyProviderRecipient({ kid, kek, provider: '' })).toThrow(TypeError);
  });
});
