export { freePort, freePorts, spawnProcess, waitForPort } from './process-launcher.js';
export type { RunningService, SpawnedProcess, SpawnOptions } from './process-launcher.js';
