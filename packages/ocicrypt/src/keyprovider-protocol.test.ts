import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeKeyProviderInput, decodeKeyProviderOutput, encodeKeyProviderInput, encodeKeyUnwrapOutput, encodeKeyWrapOutput } from './keyprovider-protocol.js';

const annotation = Buffer.from('{"kid":"kbs:///default/key/1","wrapped_data":"AA==","iv":"AA==","wrap_type":"A256GCM"}');

describe('key provider protocol codec', () => {
  it('decodes UnWrapKey input exactly as Go ocicrypt builds it', () => {
    const go = `{"op":"keyunwrap","keywrapparams":{"ec":null,"optsdata":null},"keyunwrapparams":{"dc":{"Parameters":{"attestation-agent":["RW5hYmxlZA=="]}},"annotation":"${annotation.toString('base64')}"}}`;
    const input = decodeKeyProviderInput(Buffer.from(go));
    expect(input.op).toBe('keyunwrap');
    expect(Buffer.from(input.keyunwrapparams.annotation as Uint8Array).equals(annotation)).toBe(true);
    expect(Buffer.from(input.keyunwrapparams.dc?.Parameters['attestation-agent']?.[0] as Uint8Array).toString()).toBe('Enabled');
    expect(input.keywrapparams).toEqual({ ec: null, optsdata: null });
    // and re-encodes to the same JSON
    expect(JSON.parse(encodeKeyProviderInput(input).toString())).toMatchObject(JSON.parse(go));
  });

  it('decodes the Rust form (byte fields as arrays of numbers)', () => {
    const rust = JSON.stringify({ op: 'keyunwrap', keywrapparams: { ec: null, optsdata: null }, keyunwrapparams: { dc: { Parameters: { 'attestation-agent': [[69, 110]] } }, annotation: [...annotation] } });
    const input = decodeKeyProviderInput(rust);
    expect(Buffer.from(input.keyunwrapparams.annotation as Uint8Array).equals(annotation)).toBe(true);
    expect([...(input.keyunwrapparams.dc?.Parameters['attestation-agent']?.[0] ?? [])]).toEqual([69, 110]);
  });

  it('decodes a keywrap request with an EncryptConfig', () => {
    const optsdata = randomBytes(40);
    const input = decodeKeyProviderInput(JSON.stringify({ op: 'keywrap', keywrapparams: { ec: { Parameters: { 'attestation-agent': ['a2lk'] }, DecryptConfig: { Parameters: null } }, optsdata: optsdata.toString('base64') }, keyunwrapparams: { dc: null, annotation: null } }));
    expect(Buffer.from(input.keywrapparams.optsdata as Uint8Array).equals(optsdata)).toBe(true);
    expect(input.keywrapparams.ec?.DecryptConfig?.Parameters).toEqual({});
  });

  it.each([
    ['unknown op', { op: 'keydelete' }],
    ['keyunwrap without annotation', { op: 'keyunwrap', keyunwrapparams: { dc: null } }],
    ['keywrap without optsdata', { op: 'keywrap', keywrapparams: { ec: null } }],
    ['byte 256', { op: 'keyunwrap', keyunwrapparams: { annotation: [1, 256] } }],
    ['byte -1', { op: 'keyunwrap', keyunwrapparams: { annotation: [-1] } }],
    ['fractional byte', { op: 'keyunwrap', keyunwrapparams: { annotation: [1.5] } }],
    ['string byte', { op: 'keyunwrap', keyunwrapparams: { annotation: ['1'] } }],
    ['bad base64', { op: 'keyunwrap', keyunwrapparams: { annotation: 'a*b=' } }],
    ['number annotation', { op: 'keyunwrap', keyunwrapparams: { annotation: 5 } }],
    ['dc not an object', { op: 'keyunwrap', keyunwrapparams: { dc: [], annotation: 'AA==' } }],
    ['too many parameters', { op: 'keyunwrap', keyunwrapparams: { dc: { Parameters: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, []])) }, annotation: 'AA==' } }],
    ['array message', []],
  ])('refuses %s with KEYPROVIDER_MESSAGE_MALFORMED', (_n, msg) => {
    expect(() => decodeKeyProviderInput(JSON.stringify(msg))).toThrow(expect.objectContaining({ code: 'KEYPROVIDER_MESSAGE_MALFORMED' }));
  });

  it('refuses oversized and non-JSON messages', () => {
    expect(() => decodeKeyProviderInput(Buffer.alloc(1024 * 1024 + 1, 0x20))).toThrow(expect.objectContaining({ code: 'KEYPROVIDER_MESSAGE_MALFORMED' }));
    expect(() => decodeKeyProviderInput('{')).toThrow(expect.objectContaining({ code: 'KEYPROVIDER_MESSAGE_MALFORMED' }));
    expect(() => decodeKeyProviderInput(JSON.stringify({ op: 'keyunwrap', keyunwrapparams: { annotation: new Array(300_000).fill(0) } }))).toThrow(expect.objectContaining({ code: 'KEYPROVIDER_MESSAGE_MALFORMED' }));
  });

  it('encodes replies in the form Go unmarshals, and decodes both forms', () => {
    const optsdata = randomBytes(50);
    const out = encodeKeyUnwrapOutput(optsdata);
    expect(out.toString()).toBe(`{"keyunwrapresults":{"optsdata":"${optsdata.toString('base64')}"}}`);
    expect(Buffer.from(decodeKeyProviderOutput(out).keyunwrapresults?.optsdata as Uint8Array).equals(optsdata)).toBe(true);
    expect(encodeKeyWrapOutput(annotation).toString()).toBe(`{"keywrapresults":{"annotation":"${annotation.toString('base64')}"}}`);
    expect(Buffer.from(decodeKeyProviderOutput(JSON.stringify({ keyunwrapresults: { optsdata: [...optsdata] } })).keyunwrapresults?.optsdata as Uint8Array).equals(optsdata)).toBe(true);
  });
});
