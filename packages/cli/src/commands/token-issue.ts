import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { SignJWT } from 'jose';
import { UsageError } from '@keyhold/command-line';
import { EXIT } from '../command.js';
import { parseDurationMs } from '../duration.js';
import type { KeyholdRun } from '../keyhold-run.js';

const MAX_KEY_BYTES = 64 * 1024;
const MAX_LIFETIME_SEC = 30 * 24 * 3600;

/** A token lifetime (`90s`, `15m`, `1h`, `7d`) in whole seconds; undefined when malformed, under 1 s or over 30 days. */
export function parseLifetime(text: string): number | undefined {
  const msValue = parseDurationMs(text);
  if (msValue === undefined) return undefined;
  const sec = Math.floor(msValue / 1000);
  return sec >= 1 && sec <= MAX_LIFETIME_SEC ? sec : undefined;
}

function algOf(key: KeyObject): 'EdDSA' | 'ES256' | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  return undefined;
}

/**
 * `keyhold token issue`: mint an admin token (JWT) for the KBS admin API, signed with a PEM private
 * key (Ed25519 → EdDSA, EC P-256 → ES256). Prints the token (--json: {"token","exp","alg"}).
 */
export async function issueToken(o: { key: string; role: string; lifetime: string; iss?: string; aud?: string; sub?: string; kid?: string }, run: KeyholdRun): Promise<number> {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(o.role)) throw new UsageError('--role must be 1-64 letters, digits, _ . -');
  const lifetimeSec = parseLifetime(o.lifetime);
  if (lifetimeSec === undefined) throw new UsageError(`--lifetime ${JSON.stringify(o.lifetime.slice(0, 100))}: expected a duration such as 90s, 15m, 1h or 7d, at most 30d`);

  const st = await stat(o.key);
  if (st.size > MAX_KEY_BYTES) throw new UsageError(`${o.key} is too large for a key file`);
  const text = await readFile(o.key, 'utf8');
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch (cause) {
    if (/-----BEGIN [A-Z0-9 ]*PUBLIC KEY-----/.test(text)) {
      throw new UsageError(`${o.key} is a PUBLIC key; --key needs the PRIVATE key that signs tokens`, {
        cause,
        hint: 'the KBS holds the public half (--admin-public-key); sign with the private half, e.g. made by: openssl genpkey -algorithm ed25519 -out admin.key.pem',
      });
    }
    throw new UsageError(`cannot read a private key from ${o.key}: ${(cause as Error).message}`, { cause });
  }
  if ((st.mode & 0o077) !== 0) run.io.stderr.write(`warning: private key ${o.key} is readable by group or others (chmod 600 ${o.key})\n`);
  const alg = algOf(key);
  if (alg === undefined) throw new UsageError('the key must be Ed25519 or EC P-256 (the KBS accepts only EdDSA and ES256 admin tokens)');

  const iat = Math.floor(run.now().getTime() / 1000);
  const exp = iat + lifetimeSec;
  const jwt = new SignJWT({ role: o.role })
    .setProtectedHeader({ alg, typ: 'JWT', ...(o.kid === undefined ? {} : { kid: o.kid }) })
    .setIssuedAt(iat)
    .setExpirationTime(exp);
  if (o.iss !== undefined) jwt.setIssuer(o.iss);
  if (o.aud !== undefined) jwt.setAudience(o.aud);
  if (o.sub !== undefined) jwt.setSubject(o.sub);
  const token = await jwt.sign(key);
  run.io.stdout.write(run.json ? `${JSON.stringify({ token, exp, alg })}\n` : `${token}\n`);
  return EXIT.OK;
}
