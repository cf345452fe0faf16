import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parseResourcePath } from '@keyhold/protocol';
import { EXIT, type CommandIo } from '../command.js';
import { AdminCallError, DEFAULT_KBS_URL, adminCall, readAdminToken } from '../kbs-admin-client.js';

const USAGE = `Usage: keyhold config [--url URL] --admin-token-file FILE [--json] <action> [options]

Actions (kbs-client compatible):
  set-resource --path REPO/TYPE/TAG --resource-file FILE   store a secret
  delete-resource --path REPO/TYPE/TAG                     delete a secret
  set-reference-value --name NAME --value V [--value V]... set a reference value list (Trustee RVPS "sample")
  set-sample-reference-value NAME VALUE...                 same, positional form
  get-reference-values                                     print all reference values

Options:
  --url URL                 KBS base URL (default ${DEFAULT_KBS_URL}, env KEYHOLD_KBS_URL)
  --admin-token-file FILE   file holding an admin JWT
  --json                    print results as JSON on stdout`;

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        url: { type: 'string' },
        'admin-token-file': { type: 'string' },
        json: { type: 'boolean', default: false },
        path: { type: 'string' },
        'resource-file': { type: 'string' },
        name: { type: 'string' },
        value: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    io.stderr.write(`keyhold config: ${(err as Error).message}\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    io.stderr.write(`${USAGE}\n`);
    return EXIT.OK;
  }
  const [action, ...rest] = positionals;
  const url = values.url ?? process.env['KEYHOLD_KBS_URL'] ?? DEFAULT_KBS_URL;
  const usage = (msg: string): number => {
    io.stderr.write(`keyhold config: ${msg}\n${USAGE}\n`);
    return EXIT.USAGE;
  };
  const out = (human: string, json: unknown): void => {
    if (values.json === true) io.stdout.write(`${JSON.stringify(json)}\n`);
    else io.stderr.write(`${human}\n`);
  };
  try {
    switch (action) {
      case 'set-resource': {
        if (values.path === undefined || values['resource-file'] === undefined) return usage('set-resource needs --path and --resource-file');
        const path = parseResourcePath(values.path.replace(/^\/+/, ''));
        const bytes = await readFile(values['resource-file']);
        const token = await readAdminToken(values['admin-token-file']);
        const res = await adminCall(url, token, 'POST', `/kbs/v0/resource/${path.repository}/${path.type}/${path.tag}`, { bytes });
        out(`stored ${values.path}`, res);
        return EXIT.OK;
      }
      case 'delete-resource': {
        if (values.path === undefined) return usage('delete-resource needs --path');
        const path = parseResourcePath(values.path.replace(/^\/+/, ''));
        const token = await readAdminToken(values['admin-token-file']);
        await adminCall(url, token, 'DELETE', `/kbs/v0/resource/${path.repository}/${path.type}/${path.tag}`);
        out(`deleted ${values.path}`, { deleted: values.path });
        return EXIT.OK;
      }
      case 'set-reference-value':
      case 'set-sample-reference-value': {
        const name = action === 'set-reference-value' ? values.name : rest[0];
        const vals = action === 'set-reference-value' ? (values.value ?? []) : rest.slice(1);
        if (name === undefined || vals.length === 0) return usage(`${action} needs a name and at least one value`);
        const token = await readAdminToken(values['admin-token-file']);
        const payload = Buffer.from(JSON.stringify({ [name]: vals })).toString('base64');
        const res = await adminCall(url, token, 'POST', '/kbs/v0/reference-value', { json: { version: '0.1.0', type: 'sample', payload } });
        out(`reference value ${name} set (${vals.length} value${vals.length === 1 ? '' : 's'})`, res);
        return EXIT.OK;
      }
      case 'get-reference-values': {
        const token = await readAdminToken(values['admin-token-file']);
        const res = await adminCall(url, token, 'GET', '/kbs/v0/reference-value');
        io.stdout.write(`${JSON.stringify(res, null, values.json === true ? undefined : 2)}\n`);
        return EXIT.OK;
      }
      default:
        return usage(action === undefined ? 'no action given' : `unknown action '${action}'`);
    }
  } catch (err) {
    if (err instanceof AdminCallError || (err as { code?: string }).code?.startsWith('PROTOCOL_') === true || (err as NodeJS.ErrnoException).code === 'ENOENT') {
      io.stderr.write(`keyhold config: ${(err as Error).message}\n`);
      return EXIT.FAIL;
    }
    throw err;
  }
}
