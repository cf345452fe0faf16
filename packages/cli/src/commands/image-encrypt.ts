import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CliError, UsageError } from '@keyhold/command-line';
import { imageProgressBar } from '@keyhold/command-line/progress';
import {
  encryptImage,
  jweRecipient,
  keyProviderRecipient,
  KEK_BYTES,
  OciLayoutReader,
  type OciImageRef,
  type Recipient,
} from '@keyhold/ocicrypt';
import { parseResourceUri } from '@keyhold/protocol';
import { EXIT } from '../command.js';
import type { KeyholdRun } from '../keyhold-run.js';

/** `oci:DIR:TAG` (skopeo's oci layout transport; the path ends at the first colon). */
function parseOciRef(ref: string): OciImageRef {
  const m = /^oci:([^:]+):([A-Za-z0-9_][A-Za-z0-9._@+/-]{0,254})$/.exec(ref);
  if (m === null) throw new TypeError(`${JSON.stringify(ref.slice(0, 200))} is not oci:DIR:TAG`);
  return { dir: resolve(m[1] as string), tag: m[2] as string };
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

/**
 * `keyhold image encrypt`: encrypt every layer as ocicrypt does (AES-256-CTR + HMAC-SHA256,
 * +encrypted media types, enc.keys.* and enc.pubopts annotations) for the node's key provider
 * (--kid: each layer key wrapped in a CoCo annotation packet under the KEK the KBS holds there)
 * and/or jwe recipients. With --upload the KEK is stored in the KBS before any layer is encrypted.
 * A progress bar shows on stderr when it is a terminal.
 */
export async function encryptImageCommand(o: Record<string, unknown>, run: KeyholdRun): Promise<number> {
  const values = o as { input: string; output: string; kid?: string; kekFile?: string; generate?: boolean; packetVersion: string; recipient?: string[]; upload?: boolean };
  let input: OciImageRef;
  let output: OciImageRef;
  let kidPath;
  try {
    input = parseOciRef(values.input);
    output = parseOciRef(values.output);
    if (values.kid !== undefined) kidPath = parseResourceUri(values.kid);
  } catch (err) {
    throw new UsageError((err as Error).message, { hint: 'images are oci:DIR:TAG (as skopeo names them); --kid is kbs:///REPO/TYPE/TAG' });
  }
  const jweSpecs = values.recipient ?? [];
  if (values.kid === undefined && jweSpecs.length === 0) throw new UsageError('give --kid (key provider) and/or --recipient jwe:PEM');
  if (values.kid !== undefined && (values.kekFile === undefined) === (values.generate !== true)) throw new UsageError('--kid needs exactly one of --kek-file or --generate');
  if (values.kid === undefined && (values.kekFile !== undefined || values.generate === true || values.upload === true)) throw new UsageError('--kek-file, --generate and --upload need --kid');
  // SECURITY: a generated KEK that is neither uploaded nor saved would make the image undecryptable;
  // it is never written to disk by this command.
  if (values.generate === true && values.upload !== true) throw new UsageError('--generate needs --upload (the generated KEK is kept nowhere else)');
  const packetVersion = Number(values.packetVersion);
  if (packetVersion !== 1 && packetVersion !== 2) throw new UsageError('--packet-version must be 1 or 2');

  let kek: Buffer | undefined;
  const bar = imageProgressBar(run.io.stderr, 'encrypt');
  try {
    const recipients: Recipient[] = [];
    if (jweSpecs.length > 0) recipients.push(jweRecipient(await Promise.all(jweSpecs.map(readPublicKey))));
    if (values.kid !== undefined) {
      if (values.generate === true) {
        kek = randomBytes(KEK_BYTES);
      } else {
        kek = await readFile(values.kekFile as string);
        // SECURITY: the KEK is exactly 32 raw bytes (A256GCM key); anything else is a mistake
        // (e.g. a base64 or hex text file) that would otherwise fail only on the node.
        if (kek.length !== KEK_BYTES) throw new CliError('KEK_INVALID', `${values.kekFile as string} must hold exactly ${KEK_BYTES} raw bytes (it has ${kek.length})`, { hint: 'a raw 32-byte file, e.g. head -c 32 /dev/urandom > kek.bin (not base64 or hex text)' });
      }
      recipients.push(keyProviderRecipient({ kid: values.kid, kek, packetVersion }));
    }
    // Fail on a bad input before anything is uploaded.
    const reader = await OciLayoutReader.open(input.dir);
    await reader.readManifest(reader.resolve(input.tag));
    let uploaded = false;
    if (values.upload === true && kek !== undefined && kidPath !== undefined) {
      await (await run.admin()).call('POST', `/kbs/v0/resource/${kidPath.repository}/${kidPath.type}/${kidPath.tag}`, { bytes: kek });
      uploaded = true;
      run.io.stderr.write(`keyhold image encrypt: stored the KEK at ${values.kid}\n`);
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
    if (run.json) run.io.stdout.write(`${JSON.stringify(summary)}\n`);
    run.io.stderr.write(`keyhold image encrypt: encrypted ${res.layers.length} layers into ${values.output} (manifest ${res.manifest.digest})\n`);
    return EXIT.OK;
  } catch (err) {
    if (err instanceof TypeError && !(err instanceof CliError)) throw new CliError('INVALID_INPUT', err.message, { cause: err });
    throw err;
  } finally {
    bar.done();
    kek?.fill(0);
  }
}
