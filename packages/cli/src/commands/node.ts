/**
 * `keyhold node allow|disallow|revoke|remove|list` — manage which TPMs may enrol with a KBS.
 *
 * Admin endpoints used (all under the KBS URL, `Authorization: Bearer <admin JWT>`):
 *   POST   /kbs/v0/admin/ek-allowlist            {"ekHash","note"?}  → {"ekHash"}
 *   DELETE /kbs/v0/admin/ek-allowlist/<ekHash>                       → 204 (404 if not listed)
 *   GET    /kbs/v0/admin/ek-allowlist                                → {"ekHashes":[...]}
 *   POST   /kbs/v0/admin/nodes/<nodeId>/revoke                       → EnrolmentRecord
 *   DELETE /kbs/v0/admin/nodes/<nodeId>                              → 204 (record removed; the node must re-activate)
 *   GET    /kbs/v0/admin/nodes                                       → {"nodes":[EnrolmentRecord...]}
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ekHash, IdentityError } from '@keyhold/verifier';
import { ADMIN_OPTIONS, parseAdminCommand } from '../admin-command-args.js';
import { EXIT, type CommandIo } from '../command.js';
import { AdminCallError, DEFAULT_KBS_URL, adminCall, readAdminToken } from '../kbs-admin-client.js';
import { ekSpkiFromPublicFile } from './ek-hash.js';

const USAGE = `Usage: keyhold node [--url URL] --admin-token-file FILE [--json] <action>

Actions:
  allow (EK_HASH | --ek-pub FILE) [--note TEXT]   add an EK to the KBS allowlist
  disallow EK_HASH                                remove an EK from the allowlist
  revoke NODE_ID                                  revoke an enrolled node (NODE_ID = EK hash); nothing is released to it afterwards
  remove NODE_ID                                  delete a node's enrolment record (it must re-activate; lifts a revocation)
  list                                            enrolled nodes and allowlisted EKs

EK_HASH / NODE_ID: hex SHA-256 of the EK's DER SPKI (see 'keyhold ek-hash').
Options:
  --url URL                 KBS base URL (default ${DEFAULT_KBS_URL}, env KEYHOLD_KBS_URL)
  --admin-token-file FILE   file holding an admin JWT
  --json                    print results as JSON on stdout`;

const HASH = /^[0-9a-fA-F]{64}$/;

interface NodeRecord {
  nodeId: string;
  akName: string | null;
  enrolledAt: string;
  revoked: boolean;
  revokedAt?: string;
}

export async function run(argv: string[], io: CommandIo): Promise<number> {
  const p = parseAdminCommand('node', USAGE, io, () =>
    parseArgs({
      args: argv,
      options: {
        ...ADMIN_OPTIONS,
      'ek-pub': { type: 'string' },
      note: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  if (typeof p === 'number') return p;
  const { values, url, usage } = p;
  const [action, arg, ...extra] = p.positionals;
  if (extra.length > 0) return usage(`unexpected argument '${extra[0]}'`);
  const out = (human: string, json: unknown): void => {
    io.stdout.write(values.json === true ? `${JSON.stringify(json)}\n` : `${human}\n`);
  };
  try {
    switch (action) {
      case 'allow': {
        let hash: string;
        if (values['ek-pub'] !== undefined) {
          if (arg !== undefined) return usage('give either EK_HASH or --ek-pub, not both');
          hash = ekHash(ekSpkiFromPublicFile(new Uint8Array(await readFile(values['ek-pub']))));
        } else {
          if (arg === undefined || !HASH.test(arg)) return usage('allow needs a 64-hex EK hash or --ek-pub FILE');
          hash = arg.toLowerCase();
        }
        const token = await readAdminToken(values['admin-token-file']);
        const res = await adminCall(url, token, 'POST', '/kbs/v0/admin/ek-allowlist', { json: { ekHash: hash, ...(values.note !== undefined ? { note: values.note } : {}) } });
        out(`allowed ${hash}`, res ?? { ekHash: hash });
        return EXIT.OK;
      }
      case 'disallow': {
        if (arg === undefined || !HASH.test(arg)) return usage('disallow needs a 64-hex EK hash');
        const token = await readAdminToken(values['admin-token-file']);
        await adminCall(url, token, 'DELETE', `/kbs/v0/admin/ek-allowlist/${arg.toLowerCase()}`);
        out(`removed ${arg.toLowerCase()} from the allowlist`, { removed: arg.toLowerCase() });
        return EXIT.OK;
      }
      case 'revoke': {
        if (arg === undefined || !HASH.test(arg)) return usage('revoke needs a 64-hex node id');
        const token = await readAdminToken(values['admin-token-file']);
        const res = await adminCall(url, token, 'POST', `/kbs/v0/admin/nodes/${arg.toLowerCase()}/revoke`);
        out(`revoked ${arg.toLowerCase()}`, res ?? { nodeId: arg.toLowerCase(), revoked: true });
        return EXIT.OK;
      }
      case 'remove': {
        if (arg === undefined || !HASH.test(arg)) return usage('remove needs a 64-hex node id');
        const token = await readAdminToken(values['admin-token-file']);
        await adminCall(url, token, 'DELETE', `/kbs/v0/admin/nodes/${arg.toLowerCase()}`);
        out(`removed enrolment of ${arg.toLowerCase()}`, { removed: arg.toLowerCase() });
        return EXIT.OK;
      }
      case 'list': {
        if (arg !== undefined) return usage(`unexpected argument '${arg}'`);
        const token = await readAdminToken(values['admin-token-file']);
        const nodes = ((await adminCall(url, token, 'GET', '/kbs/v0/admin/nodes')) as { nodes?: NodeRecord[] } | null)?.nodes ?? [];
        const allow = ((await adminCall(url, token, 'GET', '/kbs/v0/admin/ek-allowlist')) as { ekHashes?: string[] } | null)?.ekHashes ?? [];
        if (values.json === true) {
          io.stdout.write(`${JSON.stringify({ nodes, allowlist: allow })}\n`);
          return EXIT.OK;
        }
        const allowed = new Set(allow);
        const lines = nodes.map((n) => `${n.nodeId}  ${n.revoked ? 'REVOKED ' : 'enrolled'}  ${allowed.has(n.nodeId) ? 'allowlisted' : '           '}  ak=${n.akName ?? '-'}  since=${n.enrolledAt}`);
        const enrolled = new Set(nodes.map((n) => n.nodeId));
        for (const h of allow) if (!enrolled.has(h)) lines.push(`${h}  not enrolled  allowlisted`);
        io.stdout.write(lines.length > 0 ? `${lines.join('\n')}\n` : '');
        return EXIT.OK;
      }
      default:
        return usage(action === undefined ? 'no action given' : `unknown action '${action}'`);
    }
  } catch (err) {
    if (err instanceof AdminCallError || err instanceof IdentityError || (err as NodeJS.ErrnoException).code === 'ENOENT') {
      io.stderr.write(`keyhold node: ${(err as Error).message}\n`);
      return EXIT.FAIL;
    }
    throw err;
  }
}
