import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Client, credentials, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeKeyProviderOutput, encodePrivateOptions, wrapAnnotationPacket } from '@keyhold/ocicrypt';
import { formatResourcePath } from '@keyhold/protocol';
import { KbsClientError } from '../kbs-client/errors.js';
import { runKeyProviderCmd } from './cmd-mode.js';
import { KEY_PROVIDER_SERVICE, startKeyProviderGrpcServer, type KeyProviderGrpcServer } from './grpc-server.js';
import { createUnwrapService, type UnwrapService } from './unwrap-service.js';

const kek = randomBytes(32);
const optsData = encodePrivateOptions({ symkey: randomBytes(32), digest: `sha256:${'cd'.repeat(32)}`, nonce: randomBytes(16) });
const packet = (kid: string): string => Buffer.from(wrapAnnotationPacket(optsData, { kid, kek })).toString('base64');
/** Exactly what Go ocicrypt's keyprovider key wrapper marshals for UnWrapKey. */
const goRequest = (annotation: string): Buffer =>
  Buffer.from(`{"op":"keyunwrap","keywrapparams":{"ec":null,"optsdata":null},"keyunwrapparams":{"dc":{"Parameters":{"attestation-agent":["RW5hYmxlZA=="]}},"annotation":"${annotation}"}}`);

let service: UnwrapService;
let tcp: KeyProviderGrpcServer;
let unix: KeyProviderGrpcServer;
let dir: string;

beforeAll(async () => {
  service = createUnwrapService({
    async getResource(path) {
      const p = formatResourcePath(path);
      if (p === 'default/image-kek/app1') return Buffer.from(kek);
      if (p === 'default/image-kek/denied') throw new KbsClientError('POLICY_DENY', 'HTTP 403', { status: 403 });
      throw new KbsClientError('RESOURCE_NOT_FOUND', 'HTTP 404', { status: 404 });
    },
  });
  dir = await mkdtemp(join(tmpdir(), 'kp-grpc-'));
  tcp = await startKeyProviderGrpcServer({ service, listen: '127.0.0.1:0' });
  unix = await startKeyProviderGrpcServer({ service, listen: `unix:${join(dir, 'kp.sock')}` });
});
afterAll(async () => {
  await tcp?.close();
  await unix?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function call(address: string, method: 'UnWrapKey' | 'WrapKey', json: Buffer): Promise<Buffer> {
  const client = new Client(address, credentials.createInsecure());
  const def = KEY_PROVIDER_SERVICE[method];
  if (def === undefined) throw new Error('no method');
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, json, (err: ServiceError | null, res?: Buffer) => {
      client.close();
      if (err !== null) reject(err);
      else resolve(res as Buffer);
    });
  });
}

describe('gRPC keyprovider.KeyProviderService', () => {
  it.each([
    ['TCP', () => tcp.address],
    ['a unix socket', () => unix.address],
  ])('answers UnWrapKey as Go ocicrypt sends it, over %s', async (_n, addr) => {
    const res = decodeKeyProviderOutput(await call(addr(), 'UnWrapKey', goRequest(packet('kbs:///default/image-kek/app1'))));
    expect(Buffer.from(res.keyunwrapresults?.optsdata ?? []).equals(optsData)).toBe(true);
  });

  it('answers an ocicrypt-rs request with byte arrays', async () => {
    const ann = [...Buffer.from(packet('kbs:///default/image-kek/app1'), 'base64')];
    const msg = Buffer.from(JSON.stringify({ op: 'keyunwrap', keywrapparams: {}, keyunwrapparams: { dc: { Parameters: { 'attestation-agent': [[69]] } }, annotation: ann } }));
    const res = decodeKeyProviderOutput(await call(tcp.address, 'UnWrapKey', msg));
    expect(Buffer.from(res.keyunwrapresults?.optsdata ?? []).equals(optsData)).toBe(true);
  });

  it.each([
    ['an unknown kid', goRequest(packet('kbs:///default/image-kek/nope')), status.NOT_FOUND, 'KEK_NOT_FOUND'],
    ['a denied release', goRequest(packet('kbs:///default/image-kek/denied')), status.PERMISSION_DENIED, 'KEK_RELEASE_DENIED'],
    ['a corrupt packet', goRequest(Buffer.from('{"kid":').toString('base64')), status.INVALID_ARGUMENT, 'PACKET_INVALID'],
    ['a malformed request', Buffer.from('not json'), status.INVALID_ARGUMENT, 'REQUEST_INVALID'],
  ])('refuses %s with a gRPC status and a message, and no key', async (_n, msg, code, text) => {
    const err = (await call(tcp.address, 'UnWrapKey', msg).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(code);
    expect(err.details).toContain(text);
    expect(err.details).not.toContain(kek.toString('base64'));
  });

  it('answers WrapKey with UNIMPLEMENTED', async () => {
    const err = (await call(tcp.address, 'WrapKey', Buffer.from('{"op":"keywrap"}')).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(status.UNIMPLEMENTED);
  });

  it('refuses a protobuf frame that does not parse', async () => {
    const client = new Client(tcp.address, credentials.createInsecure());
    const err = await new Promise<ServiceError>((resolve) => {
      client.makeUnaryRequest('/keyprovider.KeyProviderService/UnWrapKey', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0x7f, 0x01]), (e) => {
        client.close();
        resolve(e as ServiceError);
      });
    });
    expect(err.code).toBe(status.INVALID_ARGUMENT);
  });
});

describe('cmd mode', () => {
  const run = async (input: string | Buffer): Promise<string> => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on('data', (c: Buffer) => chunks.push(c));
    stdin.end(input);
    await runKeyProviderCmd(service, stdin, stdout);
    return Buffer.concat(chunks).toString();
  };

  it('answers the same JSON on stdout', async () => {
    const out = JSON.parse(await run(goRequest(packet('kbs:///default/image-kek/app1')))) as { keyunwrapresults: { optsdata: string } };
    expect(Buffer.from(out.keyunwrapresults.optsdata, 'base64').equals(optsData)).toBe(true);
  });

  it('refuses (and writes nothing) for a denied release and for oversized input', async () => {
    await expect(run(goRequest(packet('kbs:///default/image-kek/denied')))).rejects.toMatchObject({ code: 'KEK_RELEASE_DENIED' });
    await expect(run(Buffer.alloc(1024 * 1024 + 1, 0x20))).rejects.toMatchObject({ code: 'REQUEST_INVALID' });
  });
});
