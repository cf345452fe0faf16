import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { EXIT, type CommandIo } from '../command.js';

const USAGE = `Usage:
  keyhold token issue --key FILE --role ROLE [--lifetime 1h] [--iss ISS] [--aud AUD] [--sub SUB] [--kid NAME] [--json]
      Mints an admin token (JWT) for the KBS admin API, signed with a PEM private key:
      Ed25519 → alg EdDSA, EC P-256 → alg ES256. --lifetime is N followed by s, m, h or d
      (default 1h, at most 30d). --kid should be the identity name configured on the KBS.
      Prints the token on stdout (--json: {"token","exp","alg"}).`;

const MAX_KEY_BYTES = 64 * 1024;
const MAX_LIFETIME_SEC = 30 * 24 * 3600;
const UNIT_SEC: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Parse `90s`, `15m`, `1h`, `7d`; undefined when malformed or out of range. */
export function parseLifetime(text: string): number | undefined {
  const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(text);
  if (m === null) return undefined;
  const sec = Number(m[1]) * (UNIT_SEC[m[2] as string] ?? 0);
  return sec > 0 && sec <= MAX_LIFETIME_SEC ? sec : undefined;
}

function algOf(key: KeyObject): 'EdDSA' | 'ES256' | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  return undefined;
}

export async function run(argv: string[], io: CommandIo, now: () => Date = () => new Date()): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        key: { type: 'string' },
        role: { type: 'string' },
        lifetime: { type: 'string' },
        iss: { type: 'string' },
        aud: { type: 'string' },
        sub: { type: 'string' },
        kid: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    io.stderr.write(`keyhold token issue: ${(err as Error).message}\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  if (values.help === true) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT.OK;
  }
  const fail = (msg: string): number => {
    io.stderr.write(`keyhold token issue: ${msg}\n`);
    return EXIT.USAGE;
  };
  if (values.key === undefined) return fail('--key FILE is required');
  if (values.role === undefined || !/^[A-Za-z0-9_.-]{1,64}$/.test(values.role)) return fail('--role ROLE is required (letters, digits, _ . -)');
  const lifetimeSec = parseLifetime(values.lifetime ?? '1h');
  if (lifetimeSec === undefined) return fail('--lifetime must be N followed by s, m, h or d, at most 30d');

  let key: KeyObject;
  try {
    const st = await stat(values.key);
    if (st.size > MAX_KEY_BYTES) return fail(`${values.key} is too large for a key file`);
    if ((st.mode & 0o077) !== 0) io.stderr.write(`warning: private key ${values.key} is readable by group or others (chmod 600)\n`);
    key = createPrivateKey(await readFile(values.key, 'utf8'));
  } catch (err) {
    return fail(`cannot read a private key from ${values.key}: ${(err as Error).message}`);
  }
  const alg = algOf(key);
  if (alg === undefined) return fail('the key must be Ed25519 or EC P-256 (the KBS accepts only EdDSA and ES256 admin tokens)');

  const iat = Math.floor(now().getTime() / 1000);
  const exp = iat + lifetimeSec;
  const jwt = new SignJWT({ role: values.role })
    .setProtectedHeader({ alg, typ: 'JWT', ...(values.kid === undefined ? {} : { kid: values.kid }) })
    .setIssuedAt(iat)
    .setExpirationTime(exp);
  if (values.iss !== undefined) jwt.setIssuer(values.iss);
  if (values.aud !== undefined) jwt.setAudience(values.aud);
  if (values.sub !== undefined) jwt.setSubject(values.sub);
  const token = await jwt.sign(key);
  io.stdout.write(values.json === true ? `${JSON.stringify({ token, exp, alg })}\n` : `${token}\n`);
  return EXIT.OK;
}
