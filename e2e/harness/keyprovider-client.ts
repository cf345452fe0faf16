import { Client, credentials, type ServiceError } from '@grpc/grpc-js';

/**
 * A minimal gRPC client of `keyprovider.KeyProviderService`, written independently of the agent:
 * each message is `{ bytes = 1 }` (tag 0x0a, varint length, bytes), as protoc encodes it for
 * Go ocicrypt.
 */
function encode(payload: Buffer): Buffer {
  const len: number[] = [];
  let n = payload.length;
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([Buffer.from([0x0a, ...len]), payload]);
}

function decode(buf: Buffer): Buffer {
  if (buf.length === 0) return buf;
  if (buf[0] !== 0x0a) throw new Error('unexpected protobuf field');
  let len = 0;
  let shift = 0;
  let i = 1;
  for (;;) {
    const b = buf[i++] as number;
    len |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  return buf.subarray(i, i + len);
}

/** Call `UnWrapKey` (or `WrapKey`) with a JSON payload; resolves to the reply JSON bytes. */
export function callKeyProvider(address: string, method: 'UnWrapKey' | 'WrapKey', json: string): Promise<Buffer> {
  const client = new Client(address, credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(`/keyprovider.KeyProviderService/${method}`, encode, decode, Buffer.from(json), (err: ServiceError | null, res?: Buffer) => {
      client.close();
      if (err !== null) reject(err);
      else resolve(res as Buffer);
    });
  });
}

/** The UnWrapKey request exactly as Go ocicrypt's keyprovider wrapper marshals it. */
export function goUnwrapRequest(annotationB64: string): string {
  return `{"op":"keyunwrap","keywrapparams":{"ec":null,"optsdata":null},"keyunwrapparams":{"dc":{"Parameters":{"attestation-agent":["RW5hYmxlZA=="]}},"annotation":"${annotationB64}"}}`;
}
