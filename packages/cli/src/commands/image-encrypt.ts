import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  encryptImage,
  jweRecipient,
  keyProviderRecipient,
  KEK_BYTES,
  OciLayoutReader,
  OcicryptError,
  type ImageProgress,
  type OciImageRef,
  type Recipient,
} from '@keyhold/ocicrypt';
import { parseResourceUri } from '@keyhold/protocol';
import { EXIT, type CommandIo } from '../command.js';
import { AdminCallError, DEFAULT_KBS_URL, adminCall, readAdminToken } from '../kbs-admin-client.js';

const USAGE = `Usage: keyhold image encrypt --input oci:DIR:TAG --output oci:DIR:TAG
         [--kid kbs:///REPO/TYPE/TAG (--kek-file FILE | --generate) [--packet-version 1|2]]
         [--recipient jwe:PUBLIC.pem]... [--upload --url URL --admin-token-file FILE] [--json]

Encrypts every layer as ocicrypt does (AES-256-CTR + HMAC-SHA256, +encrypted media types,
enc.keys.* and enc.pubopts annotations), for:
  --kid URI            the node's key provider (attestation-agent): each layer key is wrapped in a
                       CoCo annotation packet (A256GCM) under the KEK the KBS holds at URI
  --kek-file FILE      the KEK: exactly 32 raw bytes
  --generate           a fresh random KEK (needs --upload: it is never written to disk)
  --recipient jwe:PEM  an ocicrypt jwe recipient (RSA or EC public key); may repeat
  --upload             store the KEK in the KBS at the kid's path (admin API; replaces any
                       resource already there) before encrypting
  --url URL            KBS base URL (default ${DEFAULT_KBS_URL}, env KEYHOLD_KBS_URL)
  --admin-token-file   file holding an admin JWT
  --json               print a summary as JSON on stdout
A progress bar shows on stderr when it is a terminal. Exit codes: 0 ok, 1 failure, 2 usage.`;

/** `oci:DIR:TAG` (skopeo's oci layout transport; the path ends at the first colon). */
function parseOciRef(ref: string): OciImageRef {
  const m = /^oci:([^:]+):([A-Za-z0-9_][A-Za-z0-9._@+/-]{0,254})$/.exec(ref);
  if (m === null) throw new TypeError(`${JSON.stringify(ref.slice(0, 200))} is not oci:DIR:TAG`);
  return { dir: resolve(m[1] as string), tag: m[2] as string };
}

function progressBar(io: CommandIo): { onProgress?: (p: ImageProgress) => void; done(): void } {
  if ((io.stderr as { isTTY?: boolean }).isTTY !== true) return { done: () => undefined };
  let last = 0;
  let latest: ImageProgress | undefined;
  const draw = (p: ImageProgress): void => {
    const frac = p.bytesTotal === 0 ? 1 : Math.min(1, p.bytesDone / p.bytesTotal);
    const fill = Math.round(frac * 30);
    const mb = (n: number): string => (n / 1_048_576).toFixed(1);
    io.stderr.write(`\rencrypt layer ${p.layer + 1}/${p.layers} [${'#'.repeat(fill)}${'.'.repeat(30 - fill)}] ${mb(p.bytesDone)}/${mb(p.bytesTotal)} MiB ${(frac * 100).toFixed(0)}%`);
  };
  return {
    onProgress(p) {
      latest = p;
      const now = Date.now();
      if (now - last < 100 && p.bytesDone < p.bytesTotal) return;
      last = now;
      draw(p);
    },
    done() {
      if (latest === undefined) return;
      draw(latest);
      io.stderr.write('\n');
    },
  };
}

async function readPublicKey(spec: string): Promise<KeyObject> {
  // ocicrypt's recipient syntax: jwe:FILE.
  if (!spec.startsWith('jwe:')) throw new TypeError(`recipient ${JSON.stringify(spec.slice(0, 200))} must be jwe:PUBLIC_KEY.pem`);
  const pem = await readFile(spec.slice(4));
  try {
    return createPublicKey(pem);
  } catch (cause) {
    throw new TypeError(`${spec.slice(4)} is not a PEM public key`, { cause });
  }
}

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        input: { type: 'string', short: 'i' },
        output: { type: 'string', short: 'o' },
        kid: { type: 'string' },
        'kek-file': { type: 'string' },
        generate: { type: 'boolean' },
        'packet-version': { type: 'string' },
        recipient: { type: 'string', multiple: true },
        upload: { type: 'boolean' },
        url: { type: 'string' },
        'admin-token-file': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    io.stderr.write(`keyhold image encrypt: ${(err as Error).message}\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  if (values.help === true) {
    io.stderr.write(`${USAGE}\n`);
    return EXIT.OK;
  }
  const usage = (msg: string): number => {
    io.stderr.write(`keyhold image encrypt: ${msg}\n${USAGE}\n`);
    return EXIT.USAGE;
  };
  if (values.input === undefined || values.output === undefined) return usage('--input and --output are required');
  let input: OciImageRef;
  let output: OciImageRef;
  let kidPath;
  try {
    input = parseOciRef(values.input);
    output = parseOciRef(values.output);
    if (values.kid !== undefined) kidPath = parseResourceUri(values.kid);
  } catch (err) {
    return usage((err as Error).message);
  }
  const jweSpecs = values.recipient ?? [];
  if (values.kid === undefined && jweSpecs.length === 0) return usage('give --kid (key provider) and/or --recipient jwe:PEM');
  if (values.kid !== undefined && (values['kek-file'] === undefined) === (values.generate !== true)) return usage('--kid needs exactly one of --kek-file or --generate');
  if (values.kid === undefined && (values['kek-file'] !== undefined || values.generate === true || values.upload === true)) return usage('--kek-file, --generate and --upload need --kid');
  // SECURITY: a generated KEK that is neither uploaded nor saved would make the image undecryptable;
  // it is never written to disk by this command.
  if (values.generate === true && values.upload !== true) return usage('--generate needs --upload (the generated KEK is kept nowhere else)');
  const packetVersion = values['packet-version'] === undefined ? 1 : Number(values['packet-version']);
  if (packetVersion !== 1 && packetVersion !== 2) return usage('--packet-version must be 1 or 2');
  const url = values.url ?? process.env['KEYHOLD_KBS_URL'] ?? DEFAULT_KBS_URL;

  let kek: Buffer | undefined;
  const bar = progressBar(io);
  try {
    const recipients: Recipient[] = [];
    if (jweSpecs.length > 0) recipients.push(jweRecipient(await Promise.all(jweSpecs.map(readPublicKey))));
    if (values.kid !== undefined) {
      if (values.generate === true) {
        kek = randomBytes(KEK_BYTES);
      } else {
        kek = await readFile(values['kek-file'] as string);
        // SECURITY: the KEK is exactly 32 raw bytes (A256GCM key); anything else is a mistake
        // (e.g. a base64 or hex text file) that would otherwise fail only on the node.
        if (kek.length !== KEK_BYTES) throw new TypeError(`${values['kek-file'] as string} must hold exactly ${KEK_BYTES} raw bytes (it has ${kek.length})`);
      }
      recipients.push(keyProviderRecipient({ kid: values.kid, kek, packetVersion }));
    }
    // Fail on a bad input before anything is uploaded.
    const reader = await OciLayoutReader.open(input.dir);
    await reader.readManifest(reader.resolve(input.tag));
    let uploaded = false;
    if (values.upload === true && kek !== undefined && kidPath !== undefined) {
      const token = await readAdminToken(values['admin-token-file']);
      await adminCall(url, token, 'POST', `/kbs/v0/resource/${kidPath.repository}/${kidPath.type}/${kidPath.tag}`, { bytes: kek });
      uploaded = true;
      io.stderr.write(`keyhold image encrypt: stored the KEK at ${values.kid}\n`);
    }
    const res = await encryptImage({ input, output, recipients, ...(bar.onProgress !== undefined ? { onProgress: bar.onProgress } : {}) });
    bar.done();
    const summary = {
      input: values.input,
      output: values.output,
      manifest: res.manifest,
      layers: res.layers,
      recipients: [...(values.kid !== undefined ? [`provider.attestation-agent:${values.kid}`] : []), ...jweSpecs],
      kek_uploaded: uploaded,
    };
    if (values.json === true) io.stdout.write(`${JSON.stringify(summary)}\n`);
    io.stderr.write(`keyhold image encrypt: encrypted ${res.layers.length} layers into ${values.output} (manifest ${res.manifest.digest})\n`);
    return EXIT.OK;
  } catch (err) {
    bar.done();
    if (err instanceof OcicryptError || err instanceof AdminCallError) {
      io.stderr.write(`keyhold image encrypt: ${err.code}: ${err.message}\n`);
      return EXIT.FAIL;
    }
    if (err instanceof TypeError || typeof (err as NodeJS.ErrnoException).code === 'string') {
      const code = (err as NodeJS.ErrnoException).code;
      io.stderr.write(`keyhold image encrypt: ${code !== undefined ? `${code}: ` : ''}${(err as Error).message}\n`);
      return EXIT.FAIL;
    }
    throw err;
  } finally {
    kek?.fill(0);
  }
}
