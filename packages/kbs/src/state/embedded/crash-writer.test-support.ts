// Child process for the crash test: node CAS increments and reference-value writes in a loop (with
// frequent journal compactions) until it is SIGKILLed; reports each acknowledged write to the parent.
import { updateNode } from '../node-update.js';
import { openEmbeddedState } from './open-embedded-state.js';

const [dir, nodeId] = process.argv.slice(2);
if (dir === undefined || nodeId === undefined) throw new Error('usage: crash-writer DIR NODE_ID');
const state = await openEmbeddedState({ dataDir: dir, sessionLimits: { maxSessions: 10, maxSessionBytes: 100_000 }, nodeCompactMinBytes: 4096 });
process.send?.({ ready: true });
const round = Date.now().toString(36);
const pad = 'p'.repeat(200);
for (let i = 0; ; i++) {
  const node = updateNode(state.nodes, nodeId, (prev) => {
    const base = prev === undefined ? { nodeId, akName: null, firstSeenAt: new Date().toISOString(), state: 'active' as const } : (({ version: _v, ...rest }) => rest)(prev);
    return { ...base, lastVerdict: { status: 'affirming', reason: pad, at: new Date().toISOString() } };
  }).then((r) => process.send?.({ node: r?.version }));
  const name = `crash-${round}-${i}`;
  const ref = state.referenceValues.set({ [name]: [String(i)] }).then(() => process.send?.({ ref: name }));
  await Promise.all([node, ref]);
}
