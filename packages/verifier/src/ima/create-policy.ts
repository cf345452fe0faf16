import type { ImaEntry } from './parse.js';
import { emptyRuntimePolicy, type RuntimePolicy } from './runtime-policy.js';

/** Builds a Keylime runtime policy allowing every file and buffer a known-good IMA log measured. */
export function createRuntimePolicyFromImaLog(entries: readonly ImaEntry[]): RuntimePolicy {
  const first = entries[0];
  const logHashAlg = first?.templateHash.byteLength === 32 ? 'sha256' : first?.templateHash.byteLength === 48 ? 'sha384' : first?.templateHash.byteLength === 64 ? 'sha512' : 'sha1';
  const digests: Record<string, string[]> = {};
  const imaBuf: Record<string, string[]> = {};
  for (const e of entries) {
    if (e.violation) continue;
    const target = e.templateName === 'ima-buf' ? imaBuf : digests;
    const list = (target[e.path] ??= []);
    const hex = Buffer.from(e.digest).toString('hex');
    if (!list.includes(hex)) list.push(hex);
  }
  return { ...emptyRuntimePolicy(logHashAlg), digests, 'ima-buf': imaBuf };
}
