import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '@keyhold/test-harness';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, expectKmsError, runSecretStoreConformance } from '../conformance.test-support.js';
import { KmsError } from '../errors.js';
import type { SecretStore } from '../secret-store.js';
import { createRedisStore } from './create-redis-store.js';

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kh-kms-redis-'));
const masterKeyFile = path.join(tmp, 'master.key');
const standalone: RedisServer = await startRedis();
const cluster: RedisCluster = await startRedisCluster({ masters: 3 });
afterAll(async () => {
  await standalone.stop();
  await cluster.stop();
  await fs.rm(tmp, { recursive: true, force: true });
});

runSecretStoreConformance('redis standalone', () => createRedisStore({ backend: 'redis', url: standalone.url, masterKeyFile }), {
  multiInstance: true,
  fault: { inject: () => standalone.kill(), heal: () => standalone.restart() },
});

runSecretStoreConformance(
  'redis cluster (3 masters)',
  () => createRedisStore({ backend: 'redis', cluster: { nodes: cluster.nodes.map((n) => ({ host: n.host, port: n.port })) }, masterKeyFile }),
  { multiInstance: true, fault: { inject: () => cluster.kill(), heal: () => cluster.restart() } },
);

/** Every key and every value (of any type) on one Redis node, as text. */
async function dumpEverything(client: Redis): Promise<string> {
  const parts: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      parts.push(key);
      const type = await client.type(key);
      switch (type) {
        case 'string':
          parts.push((await client.getBuffer(key))?.toString('latin1') ?? '');
          break;
        case 'hash':
          for (const [f, v] of Object.entries(await client.hgetall(key))) parts.push(f, v);
          break;
        case 'zset':
          parts.push(...(await client.zrange(key, 0, -1, 'WITHSCORES')));
          break;
        case 'set':
          parts.push(...(await client.smembers(key)));
          break;
        case 'list':
          parts.push(...(await client.lrange(key, 0, -1)));
          break;
        case 'stream':
          parts.push(JSON.stringify(await client.xrange(key, '-', '+')));
          break;
        default:
          throw new Error(`unexpected key type ${type}`);
      }
      // The serialized form too, whatever the type.
      parts.push((await client.dumpBuffer(key)).toString('latin1'));
    }
  } while (cursor !== '0');
  return parts.join('\n');
}

describe('redis backend: nothing in Redis reveals a secret', () => {
  const targets: Array<[string, () => SecretStore | Promise<SecretStore>, () => string[]]> = [
    ['standalone', () => createRedisStore({ backend: 'redis', url: standalone.url, masterKeyFile }), () => [standalone.url]],
    [
      'cluster',
      () => createRedisStore({ backend: 'redis', cluster: { nodes: cluster.nodes.map((n) => ({ host: n.host, port: n.port })) }, masterKeyFile }),
      () => cluster.nodes.map((n) => `redis://127.0.0.1:${n.port}`),
    ],
  ];
  for (const [label, make, urls] of targets) {
    it(`${label}: a SCAN of every key and value finds no plaintext, base64 or hex of the secret`, async () => {
      const store = await make();
      const secret = `known-secret-${randomBytes(12).toString('hex')}`;
      const generated = `scan/${label}/generated`;
      await store.put(`scan/${label}/value`, Buffer.from(secret), { labels: { purpose: 'scan-test' } });
      await store.put(`scan/${label}/value`, Buffer.from(`${secret}-v2`));
      await store.generate(generated, { bytes: 32 });
      const key = Buffer.from((await store.get(generated)).value);
      const forms = [
        secret,
        Buffer.from(secret).toString('base64'),
        Buffer.from(secret).toString('base64url'),
        Buffer.from(secret).toString('hex'),
        key.toString('base64'),
        key.toString('hex'),
        key.toString('latin1'),
      ];
      let sawKeys = 0;
      for (const url of urls()) {
        const client = new Redis(url);
        try {
          const dump = await dumpEverything(client);
          if (dump.includes(`scan/${label}/`)) sawKeys++;
          for (const f of forms) expect(dump.includes(f), `a form of the secret was found on ${url}`).toBe(false);
        } finally {
          client.disconnect();
        }
      }
      // The check is not vacuous: the records were found and the secret is still readable.
      expect(sawKeys).toBeGreaterThan(0);
      expect(Buffer.from((await store.get(`scan/${label}/value`, { version: 1 })).value).toString()).toBe(secret);
      await store.close();
    });
  }

  it('refuses a record swapped between names or tampered with in Redis (KMS_CORRUPT)', async () => {
    const store = await createRedisStore({ backend: 'redis', url: standalone.url, masterKeyFile });
    const client = new Redis(standalone.url);
    try {
      await store.put('swap/t/a', Buffer.from('alpha'));
      await store.put('swap/t/b', Buffer.from('bravo'));
      const recB = JSON.parse((await client.hget('{kh:swap/t/b}:r', '1')) as string) as Record<string, string>;
      await client.hset('{kh:swap/t/a}:r', '1', JSON.stringify({ ...recB, n: 'swap/t/a' }));
      await expectKmsError(store.get('swap/t/a'), 'KMS_CORRUPT');
      const ct = Buffer.from(recB.c as string, 'base64');
      ct[0] = (ct[0] as number) ^ 0x80;
      await client.hset('{kh:swap/t/b}:r', '1', JSON.stringify({ ...recB, c: ct.toString('base64') }));
      await expectKmsError(store.get('swap/t/b'), 'KMS_CORRUPT');
      await client.zadd('{kh:swap/t/c}:i', 1, '1e3');
      await expectKmsError(store.get('swap/t/c'), 'KMS_CORRUPT');
      // list fails closed on a malformed index rather than hiding it.
      await expectKmsError(store.list(), 'KMS_CORRUPT');
      await client.del('{kh:swap/t/c}:i');
      // A stray key that is not a valid resource name is not listed.
      await client.zadd('{kh:../../x}:i', 1, '1');
      expect((await store.list()).some((m) => m.name.includes('..'))).toBe(false);
      // A different master key cannot open the records.
      const other = await createRedisStore({ backend: 'redis', url: standalone.url, masterKeyFile: path.join(tmp, 'other.key') });
      await store.put('swap/t/d', Buffer.from('delta'));
      await expectKmsError(other.get('swap/t/d'), 'KMS_CORRUPT');
      await other.close();
    } finally {
      client.disconnect();
      await store.close();
    }
  });
});

describe('redis backend: server killed during a run of gets', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it('fails with KMS_UNAVAILABLE while down and succeeds again after a restart on the same port, same store', async () => {
    const store = await createRedisStore({ backend: 'redis', url: server.url, masterKeyFile });
    await store.put('kill/t/x', Buffer.from('v1'));
    const outcomes: string[] = [];
    const loop = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        try {
          await store.get('kill/t/x');
          outcomes.push('ok');
        } catch (err) {
          // Anything but a typed KMS_UNAVAILABLE (a crash, a hang, another code) fails the test.
          if (!(err instanceof KmsError) || err.code !== 'KMS_UNAVAILABLE') throw err;
          outcomes.push('unavailable');
        }
      }
    };
    await loop(20);
    await server.kill();
    await loop(5);
    expect(outcomes.slice(20)).toEqual(['unavailable', 'unavailable', 'unavailable', 'unavailable', 'unavailable']);
    await server.restart();
    // No persistence in the test server: the data is gone, but the same store object works again.
    await eventually(async () => {
      await store.put('kill/t/x', Buffer.from('v2'));
    });
    expect(Buffer.from((await store.get('kill/t/x')).value).toString()).toBe('v2');
    expect(outcomes.slice(0, 20).every((o) => o === 'ok')).toBe(true);
    await store.close();
  });
});
