import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { GRPC_STATUS_OF } from './errors.js';

describe('GRPC_STATUS_OF', () => {
  it("uses grpc-js's status values (spelled out so that cmd mode does not load gRPC)", () => {
    const expected = { REQUEST_INVALID: 'INVALID_ARGUMENT', OP_UNSUPPORTED: 'UNIMPLEMENTED', KEK_NOT_FOUND: 'NOT_FOUND', KEK_RELEASE_DENIED: 'PERMISSION_DENIED', KBS_UNAVAILABLE: 'UNAVAILABLE', KBS_ERROR: 'UNKNOWN', KEK_INVALID: 'FAILED_PRECONDITION', INTERNAL: 'INTERNAL' } as const;
    for (const [code, name] of Object.entries(expected)) expect(GRPC_STATUS_OF[code as keyof typeof expected], code).toBe(status[name]);
    for (const v of Object.values(GRPC_STATUS_OF)) expect(status[v], String(v)).toBeDefined();
  });
});
