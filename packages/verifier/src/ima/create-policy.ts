import type { ImaEntry } from './parse.js';
import { emptyRuntimePolicy, type RuntimePolicy } from './runtime-policy.js';

/** Builds a Keylime runtime policy allowing every file and buffer a known-good IMA log measured. */
export function createRuntimePolicyFromImaLog(entries: readonly ImaEntry[]): RuntimePolicy {
  const n = entries[0]?.templateHashHex.length;
  const logHashAlg = n === 64 ? 'sha256' : n === 96 ? 'sha384' : n === 128 ? 'sha512' : 'sha1';
  const digests: Record<string, string[]> = {};
  const imaBuf: Record<string, string[]> = {};
  for (const e of entries) {
    if (e.violation) continue;
    const target = e.templateName === 'ima-buf' ? imaBuf : digests;
    const list = (target[e.path] ??= []);
    const hex = e.digestHex;
    if (!list.includes(hex)) list.push(hex);
  }
  return { ...emptyRuntimePolicy(logHashAlg), digests, 'ima-buf': imaBuf };
}
