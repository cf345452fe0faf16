/**
 * `keyhold ca add|list` — manage the KBS's EK CA store (TPM vendor roots and intermediates).
 *
 * Admin endpoints used (`Authorization: Bearer <admin JWT>`):
 *   POST /kbs/v0/admin/ek-ca   body: PEM (one or more certificates) or DER, application/octet-stream
 *                              → {"added":[{"file","subject","issuer","notAfter","sha256"}]}
 *   GET  /kbs/v0/admin/ek-ca   → {"certificates":[{"file","subject","issuer","notAfter","sha256"}]}
 * Files are checked locally first (each must decode as a CA certificate) so typos fail early;
 * the KBS checks again.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { decodeCaCertificates, IdentityError } from '@keyhold/verifier';
import { ADMIN_OPTIONS, parseAdminCommand } from '../admin-command-args.js';
import { EXIT, type CommandIo } from '../command.js';
import { AdminCallError, DEFAULT_KBS_URL, adminCall, readAdminToken } from '../kbs-admin-client.js';

const USAGE = `Usage: keyhold ca [--url URL] --admin-token-file FILE [--json] <action>

Actions:
  add FILE...   upload EK CA certificates (PEM with one or more certificates, or DER)
  list          list the KBS's EK CA store

Options:
  --url URL                 KBS base URL (default ${DEFAULT_KBS_URL}, env KEYHOLD_KBS_URL)
  --admin-token-file FILE   file holding an admin JWT
  --json                    print results as JSON on stdout`;

interface CaEntry {
  file: string;
  subject: string;
  issuer: string;
  notAfter: string;
  sha256: string;
}

export async function run(argv: string[], io: CommandIo): Promise<number> {
  const p = parseAdminCommand('ca', USAGE, io, () =>
    parseArgs({
      args: argv,
      options: {
        ...ADMIN_OPTIONS,

      },
      allowPositionals: true,
      strict: true,
    }),
  );
  if (typeof p === 'number') return p;
  const { values, url, usage } = p;
  const [action, ...files] = p.positionals;
  try {
    switch (action) {
      case 'add': {
        if (files.length === 0) return usage('add needs at least one certificate file');
        const uploads = await Promise.all(files.map(async (f) => ({ f, bytes: new Uint8Array(await readFile(f)) })));
        for (const u of uploads) decodeCaCertificates(u.bytes, u.f);
        const token = await readAdminToken(values['admin-token-file']);
        const added: CaEntry[] = [];
        for (const u of uploads) {
          const res = (await adminCall(url, token, 'POST', '/kbs/v0/admin/ek-ca', { bytes: u.bytes })) as { added?: CaEntry[] } | null;
          added.push(...(res?.added ?? []));
        }
        io.stdout.write(values.json === true ? `${JSON.stringify({ added })}\n` : added.map((e) => `added ${e.sha256}  ${e.subject}`).join('\n') + (added.length ? '\n' : ''));
        return EXIT.OK;
      }
      case 'list': {
        if (files.length > 0) return usage(`unexpected argument '${files[0]}'`);
        const token = await readAdminToken(values['admin-token-file']);
        const res = ((await adminCall(url, token, 'GET', '/kbs/v0/admin/ek-ca')) as { certificates?: CaEntry[] } | null)?.certificates ?? [];
        io.stdout.write(
          values.json === true
            ? `${JSON.stringify({ certificates: res })}\n`
            : res.map((e) => `${e.sha256}  ${e.file}  ${e.subject}  (issuer ${e.issuer}; until ${e.notAfter})`).join('\n') + (res.length ? '\n' : ''),
        );
        return EXIT.OK;
      }
      default:
        return usage(action === undefined ? 'no action given' : `unknown action '${action}'`);
    }
  } catch (err) {
    if (err instanceof AdminCallError || err instanceof IdentityError || (err as NodeJS.ErrnoException).code === 'ENOENT') {
      io.stderr.write(`keyhold ca: ${(err as Error).message}\n`);
      return EXIT.FAIL;
    }
    throw err;
  }
}
