import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodePrivateOptions, keyProviderAnnotation, parsePrivateOptions, wrapAnnotationPacket, decodeKeyProviderOutput } from '@keyhold/ocicrypt';
import { formatResourcePath, type ResourcePath } from '@keyhold/protocol';
import { KbsClientError } from '../kbs-client/errors.js';
import { createUnwrapService, type KekSource } from './unwrap-service.js';

const KID = 'kbs:///default/image-kek/app1';
const kek = randomBytes(32);
const optsData = encodePrivateOptions({ symkey: randomBytes(32), digest: `sha256:${'ab'.repeat(32)}`, nonce: randomBytes(16) });

/** A KBS stand-in holding resources by path; records what was asked and the buffers handed out. */
function kbs(resources: Record<string, Uint8Array | KbsClientError>): KekSource & { asked: string[]; handed: Uint8Array[] } {
  const asked: string[] = [];
  const handed: Uint8Array[] = [];
  return {
    asked,
    handed,
    async getResource(path: ResourcePath) {
      asked.push(formatResourcePath(path));
      const r = resources[formatResourcePath(path)];
      if (r === undefined) throw new KbsClientError('RESOURCE_NOT_FOUND', 'GET resource: HTTP 404', { status: 404 });
      if (r instanceof KbsClientError) throw r;
      const copy = Buffer.from(r);
      handed.push(copy);
      return copy;
    },
  };
}

const request = (annotation: unknown, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ op: 'keyunwrap', keywrapparams: { ec: null, optsdata: null }, keyunwrapparams: { dc: { Parameters: { 'attestation-agent': ['RW5hYmxlZA=='] } }, annotation }, ...extra });
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

describe('unwrap service', () => {
  it('unwraps a v1 and a v2 packet (Go base64 and Rust byte-array encodings) and zeroes the KEK', async () => {
    for (const packetVersion of [1, 2] as const) {
      const src = kbs({ 'default/image-kek/app1': kek });
      const svc = createUnwrapService(src);
      const packet = wrapAnnotationPacket(optsData, { kid: KID, kek, packetVersion });
      for (const annotation of [b64(packet), [...packet]]) {
        const out = decodeKeyProviderOutput(await svc.handleMessage(request(annotation)));
        expect(Buffer.from(out.keyunwrapresults?.optsdata ?? []).equals(optsData)).toBe(true);
      }
      expect(src.asked).toEqual(['default/image-kek/app1', 'default/image-kek/app1']);
      for (const h of src.handed) expect(h.every((b) => b === 0)).toBe(true);
    }
  });

  it('passes ?version=N through to the KBS', async () => {
    let version: number | undefined;
    const svc = createUnwrapService({
      async getResource(_p, o) {
        version = o?.version;
        return Buffer.from(kek);
      },
    });
    const out = await svc.unwrapPacket(wrapAnnotationPacket(optsData, { kid: `${KID}?version=3`, kek }));
    expect(parsePrivateOptions(out).digest).toBe(`sha256:${'ab'.repeat(32)}`);
    expect(version).toBe(3);
  });

  it.each([
    ['unknown kid (404)', {}, 'KEK_NOT_FOUND'],
    ['denied release (403)', { 'default/image-kek/app1': new KbsClientError('POLICY_DENY', 'HTTP 403: denied (PolicyDeny)', { status: 403 }) }, 'KEK_RELEASE_DENIED'],
    ['failed attestation (401)', { 'default/image-kek/app1': new KbsClientError('ATTESTATION_FAILED', 'HTTP 401', { status: 401 }) }, 'ATTESTATION_FAILED'],
    ['unreachable KBS', { 'default/image-kek/app1': new KbsClientError('KBS_UNREACHABLE', 'ECONNREFUSED') }, 'KBS_UNAVAILABLE'],
    ['a KEK of the wrong size', { 'default/image-kek/app1': randomBytes(16) }, 'KEK_INVALID'],
    ['the wrong KEK', { 'default/image-kek/app1': randomBytes(32) }, 'UNWRAP_FAILED'],
  ] as const)('refuses with no key: %s', async (_n, resources, code) => {
    const svc = createUnwrapService(kbs(resources as Record<string, Uint8Array | KbsClientError>));
    await expect(svc.handleMessage(request(b64(wrapAnnotationPacket(optsData, { kid: KID, kek }))))).rejects.toMatchObject({ code });
  });

  const packet = JSON.parse(wrapAnnotationPacket(optsData, { kid: KID, kek }).toString()) as Record<string, string>;
  it.each([
    ['a packet for another KEK provider', { ...packet, version: '0.1.0', provider: 'aliyun' }, 'PACKET_PROVIDER_UNSUPPORTED'],
    ['a corrupt packet (flipped bit)', { ...packet, wrapped_data: Buffer.from(Buffer.from(packet.wrapped_data as string, 'base64').map((b, i) => (i === 0 ? b ^ 1 : b))).toString('base64') }, 'UNWRAP_FAILED'],
    ['an unknown wrap_type', { ...packet, wrap_type: 'A128KW' }, 'PACKET_INVALID'],
    ['a kid that is not a kbs URI', { ...packet, kid: 'https://evil.example/key' }, 'PACKET_INVALID'],
    ['a kid with a bad path', { ...packet, kid: 'kbs:///default/../../x' }, 'KID_INVALID'],
  ])('refuses with no key and no KBS call: %s', async (_n, p, code) => {
    const src = kbs({ 'default/image-kek/app1': kek });
    const svc = createUnwrapService(src);
    await expect(svc.handleMessage(request(b64(Buffer.from(JSON.stringify(p)))))).rejects.toMatchObject({ code });
    if (code !== 'UNWRAP_FAILED') expect(src.asked).toEqual([]);
  });

  it.each([
    ['not JSON', '{"op":'],
    ['keyunwrap without annotation', JSON.stringify({ op: 'keyunwrap', keyunwrapparams: { dc: null } })],
    ['an annotation that is not base64', request('%%%')],
    ['an annotation array with a 256', request([1, 256])],
    ['an unknown op', JSON.stringify({ op: 'keyexport', keyunwrapparams: { annotation: 'e30=' } })],
  ])('refuses a malformed request: %s', async (_n, msg) => {
    await expect(createUnwrapService(kbs({})).handleMessage(msg)).rejects.toMatchObject({ code: 'REQUEST_INVALID' });
  });

  it('refuses keywrap on the guest', async () => {
    const msg = JSON.stringify({ op: 'keywrap', keywrapparams: { ec: { Parameters: {}, DecryptConfig: null }, optsdata: b64(optsData) }, keyunwrapparams: { dc: null, annotation: null } });
    await expect(createUnwrapService(kbs({})).handleMessage(msg)).rejects.toMatchObject({ code: 'OP_UNSUPPORTED' });
  });

  it('layerUnwrapper tries each packet of the provider annotation and refuses a layer without one', async () => {
    const svc = createUnwrapService(kbs({ 'default/image-kek/app1': kek }));
    const good = b64(wrapAnnotationPacket(optsData, { kid: KID, kek }));
    const other = b64(wrapAnnotationPacket(optsData, { kid: 'kbs:///default/image-kek/gone', kek }));
    const unwrap = svc.layerUnwrapper();
    expect(Buffer.from(await unwrap({ [keyProviderAnnotation('attestation-agent')]: `${other},${good}` })).equals(optsData)).toBe(true);
    await expect(unwrap({ [keyProviderAnnotation('attestation-agent')]: other })).rejects.toMatchObject({ code: 'KEK_NOT_FOUND' });
    await expect(unwrap({ [keyProviderAnnotation('other')]: good })).rejects.toMatchObject({ code: 'PACKET_INVALID' });
  });
});
