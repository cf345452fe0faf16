// Child process for the read-cache test: applies one change to an embedded store, then exits.
import { createEmbeddedStore } from './create-embedded-store.js';

const [dir, op, name, value] = process.argv.slice(2);
if (dir === undefined || op === undefined || name === undefined) throw new Error('usage: put-writer DIR put|delete NAME [VALUE]');
const store = await createEmbeddedStore({ backend: 'embedded', dir });
if (op === 'put') await store.put(name, Buffer.from(value ?? ''));
else await store.delete(name);
await store.close();
