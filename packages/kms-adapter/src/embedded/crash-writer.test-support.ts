// Child process for the crash test: writes large values in a loop until it is SIGKILLed.
import { createEmbeddedStore } from './create-embedded-store.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: crash-writer DIR');
const store = await createEmbeddedStore({ backend: 'embedded', dir });
await store.put('r/t/big', Buffer.alloc(256 * 1024, 1), { keepVersions: 5 });
process.send?.('ready');
for (let i = 2; ; i++) {
  await store.put('r/t/big', Buffer.alloc(256 * 1024, i % 256), { keepVersions: 5 });
}
