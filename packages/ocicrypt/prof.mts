import { generateKeyPairSync } from 'node:crypto';
import { rmSync } from 'node:fs';
import { encryptImage, jweRecipient } from './src/index.ts';
const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
for (let i = 0; i < 3; i++) {
  rmSync('/tmp/ocx/big-enc', { recursive: true, force: true });
  const c0 = process.cpuUsage(); const t0 = performance.now();
  await encryptImage({ input: { dir: '/tmp/ocx/big', tag: 'latest' }, output: { dir: '/tmp/ocx/big-enc', tag: 'latest' }, recipients: [jweRecipient([publicKey])] });
  const c = process.cpuUsage(c0);
  console.log('wall', (performance.now() - t0).toFixed(0), 'cpu', ((c.user + c.system) / 1000).toFixed(0));
}
