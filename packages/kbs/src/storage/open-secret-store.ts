import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecretStore, type SecretStore } from '@keyhold/kms-adapter';
import type { KbsConfig } from '../config.js';
import { ConfigError } from '../config.js';

async function secretFile(path: string, what: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (cause) {
    throw new ConfigError(`cannot read ${what} ${path}`, { cause });
  }
}

/** Open the configured KMS backend (embedded by default). Credentials are read from files, never flags. */
export async function openSecretStore(config: KbsConfig): Promise<SecretStore> {
  const s = config.storage;
  switch (s.backend) {
    case 'embedded':
      return createSecretStore({
        backend: 'embedded',
        dir: s.dir ?? join(config.dataDir, 'secrets'),
        ...(s.master_key_file !== undefined ? { masterKeyFile: s.master_key_file } : {}),
      });
    case 'redis':
      return createSecretStore({
        backend: 'redis',
        ...(s.url !== undefined ? { url: s.url } : {}),
        ...(s.cluster_nodes !== undefined
          ? { cluster: { nodes: s.cluster_nodes.map((n) => ({ host: n.slice(0, n.lastIndexOf(':')), port: Number(n.slice(n.lastIndexOf(':') + 1)) })) } }
          : {}),
        masterKeyFile: s.master_key_file ?? join(config.dataDir, 'redis-master.key'),
        ...(s.key_prefix !== undefined ? { keyPrefix: s.key_prefix } : {}),
        ...(s.username !== undefined ? { username: s.username } : {}),
        ...(s.password_file !== undefined ? { password: await secretFile(s.password_file, 'redis password file') } : {}),
        ...(s.tls_ca_file !== undefined ? { tlsCaFile: s.tls_ca_file } : {}),
        ...(s.command_timeout_ms !== undefined ? { commandTimeoutMs: s.command_timeout_ms } : {}),
        ...(s.operation_timeout_ms !== undefined ? { operationTimeoutMs: s.operation_timeout_ms } : {}),
      });
    case 'vault': {
      const auth =
        s.token_file !== undefined
          ? { method: 'token' as const, token: await secretFile(s.token_file, 'vault token file') }
          : {
              method: 'approle' as const,
              roleId: s.approle_role_id ?? '',
              secretId: s.approle_secret_id_file !== undefined ? await secretFile(s.approle_secret_id_file, 'vault secret-id file') : '',
              ...(s.approle_mount !== undefined ? { mount: s.approle_mount } : {}),
            };
      return createSecretStore({
        backend: 'vault',
        address: s.address,
        auth,
        ...(s.mount !== undefined ? { mount: s.mount } : {}),
        ...(s.path_prefix !== undefined ? { pathPrefix: s.path_prefix } : {}),
        ...(s.kv_version !== undefined ? { kvVersion: s.kv_version } : {}),
        ...(s.namespace !== undefined ? { namespace: s.namespace } : {}),
        ...(s.ca_file !== undefined ? { tlsCaFile: s.ca_file } : {}),
        ...(s.request_timeout_ms !== undefined ? { requestTimeoutMs: s.request_timeout_ms } : {}),
      });
    }
  }
}
