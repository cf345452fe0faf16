import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodePrivateOptions } from '../layer/options.js';
import { decodeUnverifiedAnnotationPacket, unwrapAnnotationPacket, wrapAnnotationPacket } from './annotation-packet.js';

const kid = 'kbs:///default/image-kek/app1';
const kek = randomBytes(32);
const optsData = encodePrivateOptions({ symkey: randomBytes(32), digest: 'sha256:' + '0'.repeat(64), nonce: randomBytes(16) });
/** getKek hands out a copy: the unwrap wipes what it is given. */
const getKek = (k: Buffer) => async (): Promise<Buffer> => Buffer.from(k);
const edit = (packet: Uint8Array, f: (o: Record<string, unknown>) => void): Buffer => {
  const o = JSON.parse(Buffer.from(packet).toString()) as Record<string, unknown>;
  f(o);
  return Buffer.from(JSON.stringify(o));
};

describe('CoCo annotation packet (attestation-agent key provider)', () => {
  it('v1: {kid, wrapped_data, iv, wrap_type} with A256GCM ciphertext||tag and a 12-byte iv', async () => {
    const packet = wrapAnnotationPacket(optsData, { kid, kek });
    const o = JSON.parse(Buffer.from(packet).toString()) as Record<string, string>;
    expect(Object.keys(o)).toEqual(['kid', 'wrapped_data', 'iv', 'wrap_type']);
    expect(o.wrap_type).toBe('A256GCM');
    expect(Buffer.from(o.iv as string, 'base64').length).toBe(12);
    expect(Buffer.from(o.wrapped_data as string, 'base64').length).toBe(optsData.length + 16);
    const d = decodeUnverifiedAnnotationPacket(packet);
    expect(d).toMatchObject({ version: 1, kid, provider: 'kbs', wrapType: 'A256GCM' });
    let asked = '';
    const out = await unwrapAnnotationPacket(packet, async (k) => {
      asked = k;
      return Buffer.from(kek);
    });
    expect(asked).toBe(kid);
    expect(Buffer.from(out).equals(optsData)).toBe(true);
  });

  it('v2: version 0.1.0, provider kbs, provider_settings and annotations', async () => {
    const packet = wrapAnnotationPacket(optsData, { kid, kek, packetVersion: 2 });
    expect(JSON.parse(Buffer.from(packet).toString())).toMatchObject({ version: '0.1.0', provider: 'kbs', provider_settings: {}, annotations: {} });
    expect(decodeUnverifiedAnnotationPacket(packet).version).toBe(2);
    expect(Buffer.from(await unwrapAnnotationPacket(packet, getKek(kek))).equals(optsData)).toBe(true);
  });

  it('unwraps A256CTR packets (16-byte iv) and refuses garbage from a wrong KEK', async () => {
    const iv = randomBytes(16);
    const c = createCipheriv('aes-256-ctr', kek, iv);
    const packet = Buffer.from(JSON.stringify({ kid, wrapped_data: Buffer.concat([c.update(optsData), c.final()]).toString('base64'), iv: iv.toString('base64'), wrap_type: 'A256CTR' }));
    expect(Buffer.from(await unwrapAnnotationPacket(packet, getKek(kek))).equals(optsData)).toBe(true);
    await expect(unwrapAnnotationPacket(packet, getKek(randomBytes(32)))).rejects.toMatchObject({ code: 'PACKET_UNWRAP_FAILED' });
  });

  it('refuses a wrong KEK and a corrupt packet with PACKET_UNWRAP_FAILED', async () => {
    const packet = wrapAnnotationPacket(optsData, { kid, kek });
    await expect(unwrapAnnotationPacket(packet, getKek(randomBytes(32)))).rejects.toMatchObject({ code: 'PACKET_UNWRAP_FAILED' });
    const corrupt = edit(packet, (o) => {
      const w = Buffer.from(o.wrapped_data as string, 'base64');
      w[3] = (w[3] as number) ^ 0x80;
      o.wrapped_data = w.toString('base64');
    });
    await expect(unwrapAnnotationPacket(corrupt, getKek(kek))).rejects.toMatchObject({ code: 'PACKET_UNWRAP_FAILED' });
  });

  it('wipes the KEK it was given, and refuses a KEK of the wrong size', async () => {
    const packet = wrapAnnotationPacket(optsData, { kid, kek });
    const given = Buffer.from(kek);
    await unwrapAnnotationPacket(packet, async () => given);
    expect(given.every((b) => b === 0)).toBe(true);
    await expect(unwrapAnnotationPacket(packet, getKek(randomBytes(16)))).rejects.toMatchObject({ code: 'PACKET_KEK_INVALID' });
  });

  it.each([
    ['unknown wrap_type', (o: Record<string, unknown>) => (o.wrap_type = 'A128CBC'), 'PACKET_WRAP_TYPE_UNSUPPORTED'],
    ['another provider', (o: Record<string, unknown>) => (o.provider = 'aliyun'), 'PACKET_PROVIDER_UNSUPPORTED'],
    ['unknown version', (o: Record<string, unknown>) => (o.version = '9.9.9'), 'PACKET_MALFORMED'],
    ['missing iv', (o: Record<string, unknown>) => delete o.iv, 'PACKET_MALFORMED'],
    ['16-byte iv for GCM', (o: Record<string, unknown>) => (o.iv = randomBytes(16).toString('base64')), 'PACKET_MALFORMED'],
    ['non-kbs kid', (o: Record<string, unknown>) => (o.kid = 'file:///etc/shadow'), 'PACKET_MALFORMED'],
    ['empty kid', (o: Record<string, unknown>) => (o.kid = ''), 'PACKET_MALFORMED'],
    ['junk base64', (o: Record<string, unknown>) => (o.wrapped_data = '%%%'), 'PACKET_MALFORMED'],
    ['tag-only data', (o: Record<string, unknown>) => (o.wrapped_data = randomBytes(16).toString('base64')), 'PACKET_MALFORMED'],
    ['settings not an object', (o: Record<string, unknown>) => (o.provider_settings = 'x'), 'PACKET_MALFORMED'],
  ])('refuses a packet with %s before asking for a KEK', async (_n, f, code) => {
    const packet = edit(wrapAnnotationPacket(optsData, { kid, kek }), f);
    let asked = false;
    await expect(
      unwrapAnnotationPacket(packet, async () => {
        asked = true;
        return Buffer.from(kek);
      }),
    ).rejects.toMatchObject({ code });
    expect(asked).toBe(false);
  });

  it.each([['not json', '{'], ['array', '[]'], ['huge', ' '.repeat(70_000)]])('refuses a malformed packet (%s)', (_n, s) => {
    expect(() => decodeUnverifiedAnnotationPacket(Buffer.from(s))).toThrow(expect.objectContaining({ code: 'PACKET_MALFORMED' }));
  });

  it('rejects bad wrap options as programmer errors', () => {
    expect(() => wrapAnnotationPacket(optsData, { kid, kek: randomBytes(31) })).toThrow(TypeError);
    expect(() => wrapAnnotationPacket(optsData, { kid: 'default/k/1', kek })).toThrow(TypeError);
  });
});
