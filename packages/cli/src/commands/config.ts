import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { isValidResourceSegment, parseResourcePath } from '@keyhold/protocol';
import { AFFIRMING_RESOURCE_POLICY, ALLOW_ALL_RESOURCE_POLICY, DENY_ALL_RESOURCE_POLICY } from '@keyhold/policy';
import { ADMIN_OPTIONS, parseAdminCommand } from '../admin-command-args.js';
import { EXIT, type CommandIo } from '../command.js';
import { AdminCallError, DEFAULT_KBS_URL, adminCall, readAdminToken } from '../kbs-admin-client.js';

const USAGE = `Usage: keyhold config [--url URL] --admin-token-file FILE [--json] <action> [options]

Actions (kbs-client compatible, plus Keyhold's listings):
  set-resource --path REPO/TYPE/TAG --resource-file FILE   store a secret
  delete-resource --path REPO/TYPE/TAG                     delete a secret
  list-resources [--repository R]                          resource metadata (never values)
  get-resource-versions --path REPO/TYPE/TAG               metadata of each retained version
  set-resource-policy (--policy-file F | --allow-all | --deny-all | --affirming) [--repository R]
                                                           CEL resource policy (JSON document or bare rule),
                                                           global or scoped to repository R
  get-resource-policy [--repository R]                     the resource policy in effect (global or R's)
  delete-resource-policy [--repository R]                  back to the global policy / built-in default
  set-attestation-policy --policy-file F [--id ID]         CEL attestation policy document
  get-attestation-policy [--id ID]                         one attestation policy (default: list all)
  delete-attestation-policy --id ID
  list-policies                                            every stored policy
  set-reference-value --name NAME --value V [--value V]... set a reference value list (Trustee RVPS "sample")
  set-sample-reference-value NAME VALUE...                 same, positional form
  get-reference-values [--name NAME]                       all reference values, or one
  delete-reference-value --name NAME

Options:
  --url URL                 KBS base URL (default ${DEFAULT_KBS_URL}, env KEYHOLD_KBS_URL)
  --admin-token-file FILE   file holding an admin JWT (see 'keyhold token issue')
  --json                    print results as JSON on stdout

Exit status: 0 ok, 1 failure, 2 usage error, 3 refused by the KBS (401/403: token or role),
4 not found (404). Errors go to stderr.`;

class UsageError extends Error {}

function b64url(text: string | Uint8Array): string {
  return Buffer.from(text).toString('base64url');
}

function repositoryOption(r: string | undefined): string | undefined {
  if (r === undefined) return undefined;
  if (!isValidResourceSegment(r)) throw new UsageError('--repository must match ^[A-Za-z0-9_-][A-Za-z0-9_.-]*$');
  return r;
}

function resourceUrl(pathText: string | undefined, what: string, prefix = '/kbs/v0/resource'): string {
  if (pathText === undefined) throw new UsageError(`${what} needs --path`);
  const path = parseResourcePath(pathText.replace(/^\/+/, ''));
  return `${prefix}/${path.repository}/${path.type}/${path.tag}`;
}

export async function run(argv: string[], io: CommandIo): Promise<number> {
  const p = parseAdminCommand('config', USAGE, io, () =>
    parseArgs({
      args: argv,
      options: {
        ...ADMIN_OPTIONS,
        path: { type: 'string' },
        'resource-file': { type: 'string' },
        name: { type: 'string' },
        value: { type: 'string', multiple: true },
        'policy-file': { type: 'string' },
        'allow-all': { type: 'boolean' },
        'deny-all': { type: 'boolean' },
        affirming: { type: 'boolean' },
        repository: { type: 'string' },
        id: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  if (typeof p === 'number') return p;
  const { values, url } = p;
  const [action, ...rest] = p.positionals;
  const out = (human: string, json: unknown): void => {
    if (values.json === true) io.stdout.write(`${JSON.stringify(json)}\n`);
    else io.stderr.write(`${human}\n`);
  };
  /** Results that are data (listings, documents) go to stdout either way. */
  const print = (json: unknown): void => {
    io.stdout.write(`${JSON.stringify(json, null, values.json === true ? undefined : 2)}\n`);
  };
  const call = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: { json: unknown } | { bytes: Uint8Array }): Promise<unknown> =>
    adminCall(url, await readAdminToken(values['admin-token-file']), method, path, body);
  try {
    switch (action) {
      case 'set-resource': {
        const target = resourceUrl(values.path, 'set-resource');
        if (values['resource-file'] === undefined) throw new UsageError('set-resource needs --resource-file');
        const res = await call('POST', target, { bytes: await readFile(values['resource-file']) });
        out(`stored ${values.path}`, res);
        return EXIT.OK;
      }
      case 'delete-resource': {
        await call('DELETE', resourceUrl(values.path, 'delete-resource'));
        out(`deleted ${values.path}`, { deleted: values.path });
        return EXIT.OK;
      }
      case 'list-resources': {
        const repo = repositoryOption(values.repository);
        print(await call('GET', repo === undefined ? '/kbs/v0/resources' : `/kbs/v0/resources/${repo}`));
        return EXIT.OK;
      }
      case 'get-resource-versions': {
        print(await call('GET', resourceUrl(values.path, 'get-resource-versions', '/kbs/v0/resources')));
        return EXIT.OK;
      }
      case 'set-resource-policy': {
        const repo = repositoryOption(values.repository);
        const choices = [values['policy-file'] !== undefined, values['allow-all'] === true, values['deny-all'] === true, values.affirming === true].filter(Boolean).length;
        if (choices !== 1) throw new UsageError('set-resource-policy needs exactly one of --policy-file, --allow-all, --deny-all, --affirming');
        const text =
          values['policy-file'] !== undefined
            ? await readFile(values['policy-file'], 'utf8')
            : JSON.stringify(values['allow-all'] === true ? ALLOW_ALL_RESOURCE_POLICY : values['deny-all'] === true ? DENY_ALL_RESOURCE_POLICY : AFFIRMING_RESOURCE_POLICY);
        const res = await call('POST', repo === undefined ? '/kbs/v0/resource-policy' : `/kbs/v0/resource-policy/${repo}`, { json: { policy: b64url(text) } });
        const r = res as { policy_id?: string; version?: number };
        out(`resource policy ${String(r.policy_id)} version ${String(r.version)} set ${repo === undefined ? 'globally' : `for repository ${repo}`}`, res);
        return EXIT.OK;
      }
      case 'get-resource-policy': {
        const repo = repositoryOption(values.repository);
        print(await call('GET', repo === undefined ? '/kbs/v0/resource-policy' : `/kbs/v0/resource-policy/${repo}`));
        return EXIT.OK;
      }
      case 'delete-resource-policy': {
        const repo = repositoryOption(values.repository);
        await call('DELETE', repo === undefined ? '/kbs/v0/resource-policy' : `/kbs/v0/resource-policy/${repo}`);
        out(`resource policy ${repo === undefined ? '(global)' : `of ${repo}`} deleted`, { deleted: repo ?? 'global' });
        return EXIT.OK;
      }
      case 'set-attestation-policy': {
        if (values['policy-file'] === undefined) throw new UsageError('set-attestation-policy needs --policy-file');
        const text = await readFile(values['policy-file'], 'utf8');
        const res = await call('POST', '/kbs/v0/attestation-policy', { json: { type: 'cel', ...(values.id !== undefined ? { policy_id: values.id } : {}), policy: b64url(text) } });
        const r = res as { policy_id?: string; version?: number };
        out(`attestation policy ${String(r.policy_id)} version ${String(r.version)} set`, res);
        return EXIT.OK;
      }
      case 'get-attestation-policy': {
        print(await call('GET', values.id === undefined ? '/kbs/v0/attestation-policy' : `/kbs/v0/attestation-policy/${encodeURIComponent(values.id)}`));
        return EXIT.OK;
      }
      case 'delete-attestation-policy': {
        if (values.id === undefined) throw new UsageError('delete-attestation-policy needs --id');
        await call('DELETE', `/kbs/v0/attestation-policy/${encodeURIComponent(values.id)}`);
        out(`attestation policy ${values.id} deleted`, { deleted: values.id });
        return EXIT.OK;
      }
      case 'list-policies': {
        print(await call('GET', '/kbs/v0/policies'));
        return EXIT.OK;
      }
      case 'set-reference-value':
      case 'set-sample-reference-value': {
        const name = action === 'set-reference-value' ? values.name : rest[0];
        const vals = action === 'set-reference-value' ? (values.value ?? []) : rest.slice(1);
        if (name === undefined || vals.length === 0) throw new UsageError(`${action} needs a name and at least one value`);
        const payload = Buffer.from(JSON.stringify({ [name]: vals })).toString('base64');
        const res = await call('POST', '/kbs/v0/reference-value', { json: { version: '0.1.0', type: 'sample', payload } });
        out(`reference value ${name} set (${vals.length} value${vals.length === 1 ? '' : 's'})`, res);
        return EXIT.OK;
      }
      case 'get-reference-values': {
        print(await call('GET', values.name === undefined ? '/kbs/v0/reference-value' : `/kbs/v0/reference-value/${encodeURIComponent(values.name)}`));
        return EXIT.OK;
      }
      case 'delete-reference-value': {
        if (values.name === undefined) throw new UsageError('delete-reference-value needs --name');
        await call('DELETE', `/kbs/v0/reference-value/${encodeURIComponent(values.name)}`);
        out(`reference value ${values.name} deleted`, { deleted: values.name });
        return EXIT.OK;
      }
      default:
        throw new UsageError(action === undefined ? 'no action given' : `unknown action '${action}'`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`keyhold config: ${err.message}\n${USAGE}\n`);
      return EXIT.USAGE;
    }
    if (err instanceof AdminCallError) {
      io.stderr.write(`keyhold config: ${err.message}\n`);
      if (err.status === 401 || err.status === 403) return EXIT.DENIED;
      if (err.status === 404) return EXIT.NOT_FOUND;
      return EXIT.FAIL;
    }
    if ((err as { code?: string }).code?.startsWith('PROTOCOL_') === true) {
      io.stderr.write(`keyhold config: ${(err as Error).message}\n`);
      return EXIT.USAGE;
    }
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EACCES') {
      io.stderr.write(`keyhold config: ${(err as Error).message}\n`);
      return EXIT.FAIL;
    }
    throw err;
  }
}
