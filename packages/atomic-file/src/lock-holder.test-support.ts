// Child process for the lock tests: takes the lock on DIR, reports "locked", then waits to be killed.
import { acquireDirLock } from './dir-lock.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: lock-holder DIR');
await acquireDirLock(dir);
process.send?.('locked');
setInterval(() => undefined, 1000);
