import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '@keyhold/atomic-file';
import {
  PolicyError,
  createMemoryPolicyStore,
  parsePolicyStoreSnapshot,
  type MemoryPolicyStore,
  type PolicyStore,
  type PolicyStoreSnapshot,
} from '@keyhold/policy';

export interface FilePolicyStoreOptions {
  /** The KBS data directory; the store is `<dataDir>/<fileName>`. */
  readonly dataDir: string;
  readonly fileName?: string;
  readonly now?: () => Date;
}

const MAX_STORE_BYTES = 16 * 1024 * 1024;


/**
 * A PolicyStore kept in one JSON file in the data directory. Reads come from memory; each put or
 * delete rewrites the file atomically (temp file, fsync, rename, fsync of the directory) before it
 * resolves, and is undone in memory if the write fails. Writes are serialised within the process;
 * the file is not meant to be shared by two KBS processes.
 */
export async function openFilePolicyStore(options: FilePolicyStoreOptions): Promise<PolicyStore> {
  const file = path.join(options.dataDir, options.fileName ?? 'policies.json');
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  let snapshot: PolicyStoreSnapshot | undefined;
  try {
    const st = await stat(file);
    // SECURITY: size checked before reading (a planted huge file cannot exhaust memory at start).
    if (st.size > MAX_STORE_BYTES) throw new PolicyError('POLICY_STORE_FAILED', `policy store file exceeds ${MAX_STORE_BYTES} bytes`);
    snapshot = parsePolicyStoreSnapshot(JSON.parse(await readFile(file, 'utf8')));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (err instanceof PolicyError) throw err;
      throw new PolicyError('POLICY_STORE_FAILED', 'policy store file cannot be read', { cause: err });
    }
  }
  const memoryOptions = options.now === undefined ? {} : { now: options.now };
  let memory: MemoryPolicyStore = createMemoryPolicyStore({ ...memoryOptions, ...(snapshot === undefined ? {} : { snapshot }) });
  let queue: Promise<unknown> = Promise.resolve();

  /** Run one mutation at a time: apply in memory, persist, or roll back. */
  function mutate<T>(apply: (m: MemoryPolicyStore) => Promise<T>): Promise<T> {
    const next = queue.then(async () => {
      const before = memory.snapshot();
      const result = await apply(memory);
      try {
        await writeFileAtomic(file, JSON.stringify(memory.snapshot(), null, 2));
      } catch (cause) {
        memory = createMemoryPolicyStore({ ...memoryOptions, snapshot: before });
        throw new PolicyError('POLICY_STORE_FAILED', 'policy store file cannot be written', { cause });
      }
      return result;
    });
    queue = next.catch(() => undefined);
    return next;
  }

  return {
    get: (ref) => memory.get(ref),
    list: () => memory.list(),
    history: (ref, limit) => memory.history(ref, limit),
    put: (ref, document, opts) => mutate((m) => m.put(ref, document, opts)),
    delete: (ref) => mutate((m) => m.delete(ref)),
  };
}
