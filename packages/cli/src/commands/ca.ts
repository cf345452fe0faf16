/**
 * `keyhold ca add|list` — manage the KBS's EK CA store (TPM vendor roots and intermediates).
 *
 * Admin endpoints used (`Authorization: Bearer <admin JWT>`):
 *   POST /kbs/v0/admin/ek-ca   body: PEM (one or more certificates) or DER, application/octet-stream
 *                              → {"added":[{"file","subject","issuer","notAfter","sha256"}]}
 *   GET  /kbs/v0/admin/ek-ca   → {"certificates":[{"file","subject","issuer","notAfter","sha256"}]}
 * Files are checked locally first (each must decode as a CA certificate) so typos fail early;
 * the KBS checks again. Certificates the store already holds are reported as "already present".
 */
import { readFile } from 'node:fs/promises';
import { CliError } from '@keyhold/command-line';
import { decodeCaCertificates, IdentityError } from '@keyhold/verifier';
import { EXIT } from '../command.js';
import type { KeyholdRun } from '../keyhold-run.js';

interface CaEntry {
  file: string;
  subject: string;
  issuer: string;
  notAfter: string;
  sha256: string;
}

export async function addCa(files: string[], run: KeyholdRun): Promise<number> {
  const uploads = await Promise.all(files.map(async (f) => ({ f, bytes: new Uint8Array(await readFile(f)) })));
  const local = uploads.map((u) => {
    try {
      return { ...u, certs: decodeCaCertificates(u.bytes, u.f) };
    } catch (err) {
      if (err instanceof IdentityError) throw new CliError(err.code, `${u.f}: ${err.message}`, { cause: err, hint: 'give the CA certificate(s) as PEM or DER' });
      throw err;
    }
  });
  const admin = await run.admin();
  const known = new Set((((await admin.call('GET', '/kbs/v0/admin/ek-ca')) as { certificates?: CaEntry[] } | null)?.certificates ?? []).map((e) => e.sha256));
  const added: CaEntry[] = [];
  const present: CaEntry[] = [];
  for (const u of local) {
    const res = (await admin.call('POST', '/kbs/v0/admin/ek-ca', { bytes: u.bytes })) as { added?: CaEntry[] } | null;
    for (const e of res?.added ?? []) (known.has(e.sha256) ? present : added).push(e);
  }
  if (run.json) {
    run.io.stdout.write(`${JSON.stringify({ added, alreadyPresent: present })}\n`);
  } else {
    for (const e of added) run.io.stdout.write(`added ${e.sha256}  ${e.subject}\n`);
    for (const e of present) run.io.stdout.write(`already present ${e.sha256}  ${e.subject}\n`);
  }
  return EXIT.OK;
}

export async function listCa(run: KeyholdRun): Promise<number> {
  const res = (((await (await run.admin()).call('GET', '/kbs/v0/admin/ek-ca')) as { certificates?: CaEntry[] } | null)?.certificates ?? []);
  run.io.stdout.write(
    run.json ? `${JSON.stringify({ certificates: res })}\n` : res.map((e) => `${e.sha256}  ${e.file}  ${e.subject}  (issuer ${e.issuer}; until ${e.notAfter})`).join('\n') + (res.length ? '\n' : ''),
  );
  return EXIT.OK;
}

