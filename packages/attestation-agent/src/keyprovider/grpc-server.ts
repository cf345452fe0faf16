import { Server, ServerCredentials, type MethodDefinition, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition } from '@grpc/grpc-js';
import { MAX_KEYPROVIDER_MESSAGE_BYTES } from '@keyhold/ocicrypt';
import { asKeyProviderError, GRPC_STATUS_OF, KeyProviderError } from './errors.js';
import { decodeBytesMessage, encodeBytesMessage } from './protobuf-bytes-message.js';
import type { UnwrapService } from './unwrap-service.js';

/** Where the guest key provider listens by default (CoCo's attestation-agent keyprovider port). */
export const DEFAULT_KEYPROVIDER_LISTEN = '127.0.0.1:50000';
/** gRPC frame limit: the protocol's JSON limit plus the protobuf field header. */
const MAX_GRPC_MESSAGE_BYTES = MAX_KEYPROVIDER_MESSAGE_BYTES + 16;

const SERVICE = '/keyprovider.KeyProviderService/';

function method(name: 'WrapKey' | 'UnWrapKey'): MethodDefinition<Buffer, Buffer> {
  return {
    path: `${SERVICE}${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: encodeBytesMessage,
    // Decoded (and bounded) in the handler, so a malformed frame becomes a typed gRPC status.
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: encodeBytesMessage,
    responseDeserialize: (b: Buffer) => decodeBytesMessage(b, MAX_GRPC_MESSAGE_BYTES),
    originalName: name,
  };
}

/**
 * `keyprovider.KeyProviderService` (containers/ocicrypt keyprovider.proto): each message is one
 * `bytes` field carrying the JSON of the keyprovider protocol. Shared by the server and clients
 * (tests, tools); a client's requests and replies go through the same protobuf codec.
 */
export const KEY_PROVIDER_SERVICE: ServiceDefinition = {
  WrapKey: method('WrapKey'),
  UnWrapKey: method('UnWrapKey'),
};

export interface KeyProviderGrpcServer {
  /** The address bound, as given (`HOST:PORT` with the real port, or `unix:/path`). */
  readonly address: string;
  /** Stop accepting calls, let running ones finish (up to `graceMs`), then close. */
  close(graceMs?: number): Promise<void>;
}

export interface KeyProviderGrpcServerOptions {
  service: UnwrapService;
  /** `HOST:PORT` (port 0 picks one) or `unix:/path`. Default {@link DEFAULT_KEYPROVIDER_LISTEN}. */
  listen?: string;
  /** Told the code of each refused call (never the key). */
  onError?: (err: KeyProviderError) => void;
}

function fail(cb: sendUnaryData<Buffer>, err: KeyProviderError): void {
  cb({ code: GRPC_STATUS_OF[err.code], details: `${err.code}: ${err.message}` });
}

/** Start the guest key provider's gRPC server; resolves once it is listening. */
export async function startKeyProviderGrpcServer(opts: KeyProviderGrpcServerOptions): Promise<KeyProviderGrpcServer> {
  const listen = opts.listen ?? DEFAULT_KEYPROVIDER_LISTEN;
  const server = new Server({ 'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_GRPC_MESSAGE_BYTES });
  const report = (err: KeyProviderError): void => opts.onError?.(err);
  server.addService(KEY_PROVIDER_SERVICE, {
    WrapKey(_call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) {
      // SECURITY: no wrapping oracle on the guest (see UnwrapService.handleMessage).
      const err = new KeyProviderError('OP_UNSUPPORTED', 'WrapKey is not offered by the guest key provider');
      report(err);
      fail(cb, err);
    },
    UnWrapKey(call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) {
      let json: Buffer;
      try {
        json = decodeBytesMessage(call.request, MAX_GRPC_MESSAGE_BYTES);
      } catch (err) {
        const e = asKeyProviderError(err);
        report(e);
        fail(cb, e);
        return;
      }
      opts.service.handleMessage(json).then(
        (reply) => {
          cb(null, reply);
        },
        (err: unknown) => {
          const e = asKeyProviderError(err);
          report(e);
          fail(cb, e);
        },
      );
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, ServerCredentials.createInsecure(), (err, p) => (err !== null ? reject(err) : resolve(p)));
  }).catch((cause: unknown) => {
    throw new KeyProviderError('INTERNAL', `cannot listen on ${listen}: ${(cause as Error).message}`, { cause });
  });
  const address = listen.startsWith('unix:') ? listen : `${listen.slice(0, listen.lastIndexOf(':'))}:${port}`;
  return {
    address,
    close(graceMs = 5_000) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
