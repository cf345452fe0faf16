import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { DEFAULT_LIMITS, runStateConformance } from './conformance.test-support.js';
import { openEmbeddedState, openMemoryState } from './embedded/open-embedded-state.js';

const root = await mkdtemp(path.join(tmpdir(), 'kh-state-emb-'));
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

runStateConformance('embedded', {
  open: (scope, o) => openEmbeddedState({ dataDir: path.join(root, scope), sessionLimits: o?.sessionLimits ?? DEFAULT_LIMITS, nodeCompactMinBytes: 8 * 1024, ...(o?.eventRetention !== undefined ? { eventRetention: o.eventRetention } : {}) }),
  multiInstance: false,
  persistent: true,
});

runStateConformance('memory', {
  open: (_scope, o) => openMemoryState({ sessionLimits: o?.sessionLimits ?? DEFAULT_LIMITS, ...(o?.eventRetention !== undefined ? { eventRetention: o.eventRetention } : {}) }),
  multiInstance: false,
  persistent: false,
});
