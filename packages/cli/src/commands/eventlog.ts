import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { EventLogError, decodeEvent, parseEventLog, preferredBank, replayEventLog, type DecodedEvent, type EventLog, type EventLogBank } from '@keyhold/verifier';
import { EXIT, type CommandIo } from '../command.js';

const USAGE = `Usage: keyhold eventlog FILE [--json] [--max-bytes N]

Parses a TCG PC Client event log (binary_bios_measurements; SHA-1 or crypto-agile), prints every
event and the PCR values of each bank replayed per the TCG PC Client rules. Nothing printed is
verified: only a match against a quote makes it evidence.

  --json          print {"events":[...],"pcrs":{"sha256":{"0":"<hex>",...},...}}
  --max-bytes N   refuse larger files (default 67108864)`;

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

export async function run(argv: string[], io: CommandIo): Promise<number> {
  let values: { json?: boolean; help?: boolean; 'max-bytes'?: string };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, 'max-bytes': { type: 'string' } },
      allowPositionals: true,
      strict: true,
    }));
  } catch (err) {
    io.stderr.write(`keyhold eventlog: ${(err as Error).message}\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  if (values.help === true) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT.OK;
  }
  const maxBytes = values['max-bytes'] === undefined ? DEFAULT_MAX_BYTES : Number(values['max-bytes']);
  if (positionals.length !== 1 || !Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    io.stderr.write(`${USAGE}\n`);
    return EXIT.USAGE;
  }
  const file = positionals[0] as string;
  let bytes: Uint8Array;
  try {
    const st = await stat(file);
    if (st.size > maxBytes) {
      io.stderr.write(`keyhold eventlog: ${file}: larger than ${maxBytes} bytes\n`);
      return EXIT.FAIL;
    }
    bytes = await readFile(file);
  } catch (err) {
    io.stderr.write(`keyhold eventlog: ${file}: ${(err as NodeJS.ErrnoException).code ?? 'cannot read'}\n`);
    return EXIT.FAIL;
  }
  let log: EventLog;
  const pcrs: Record<string, Record<string, string>> = {};
  const replayErrors: Record<string, string> = {};
  try {
    log = parseEventLog(bytes);
    for (const [bank, r] of replayEventLog(log)) {
      if (!r.ok) {
        replayErrors[bank] = `${r.error.message} (${r.error.code})`;
        continue;
      }
      const out: Record<string, string> = {};
      for (const [pcr, v] of [...r.pcrs].sort((a, b) => a[0] - b[0])) out[String(pcr)] = Buffer.from(v).toString('hex');
      pcrs[bank] = out;
    }
  } catch (err) {
    if (!(err instanceof EventLogError)) throw err;
    io.stderr.write(`keyhold eventlog: ${file}: ${err.message} (${err.code})\n`);
    return EXIT.FAIL;
  }
  // A reader that goes away (`| head`) ends the output; it is not an error of the log.
  io.stdout.on('error', () => undefined);
  // Events are decoded and printed one at a time, so memory holds the log and one output chunk.
  const json = values.json === true;
  const bank = preferredBank(log);
  let parts: string[] = [json ? '{"events":[' : '---\nevents:\n'];
  let size = 0;
  for (let i = 0; i < log.events.length; i++) {
    const ev = decodeEvent(log.events[i] as EventLog['events'][number], bank);
    const s = json ? (i === 0 ? '' : ',') + JSON.stringify(ev) : formatEvent(ev);
    parts.push(s);
    size += s.length;
    if (size > 1 << 20) {
      await write(io.stdout, parts.join(''));
      parts = [];
      size = 0;
    }
  }
  if (json) {
    parts.push(`],"pcrs":${JSON.stringify(pcrs)}${Object.keys(replayErrors).length > 0 ? `,"replayErrors":${JSON.stringify(replayErrors)}` : ''}}\n`);
  } else {
    parts.push('pcrs:\n');
    for (const [b, values] of Object.entries(pcrs)) {
      parts.push(`  ${b}:\n`);
      for (const [pcr, hex] of Object.entries(values)) parts.push(`    ${pcr.padStart(2)} : 0x${hex}\n`);
    }
  }
  await write(io.stdout, parts.join(''));
  const failed = Object.entries(replayErrors);
  if (failed.length > 0) {
    io.stderr.write(`keyhold eventlog: ${file}: cannot replay ${failed.map(([b, m]) => `${b}: ${m}`).join('; ')}\n`);
    return EXIT.FAIL;
  }
  return EXIT.OK;
}

function formatEvent(ev: DecodedEvent): string {
  let s = `- EventNum: ${ev.index}\n  PCRIndex: ${ev.pcr}\n  EventType: ${ev.typeName}\n  Digests:\n`;
  for (const [bank, hex] of Object.entries(ev.digests) as [EventLogBank, string][]) s += `  - AlgorithmId: ${bank}\n    Digest: "${hex}"\n`;
  s += `  EventSize: ${ev.dataLength}\n  DataCoveredByDigest: ${ev.dataVerified ? 'yes' : 'no'}\n`;
  const d = ev.details;
  if (d === undefined) return s;
  switch (d.kind) {
    case 'efi-variable':
      s += `  Event:\n    VariableName: ${d.variableGuid}\n    UnicodeName: ${d.name}\n    VariableDataLength: ${d.dataLength}\n`;
      if (d.enabled !== undefined) s += `    Enabled: ${d.enabled ? 'Yes' : 'No'}\n`;
      if (d.text !== undefined) s += `    Text: ${JSON.stringify(d.text)}\n`;
      if (d.signatures !== undefined) {
        s += `    Signatures:\n`;
        for (const sig of d.signatures) s += `    - Type: ${sig.signatureType}\n      Owner: ${sig.owner}\n      SHA256: "${sig.sha256}"\n`;
      }
      return s;
    case 'boot-application':
      return `${s}  Event:\n    ImageLength: ${d.imageLength}\n    DevicePath: ${JSON.stringify(d.devicePath)}\n`;
    case 'ipl':
      return `${s}  Event:\n    String: ${JSON.stringify(d.text)}\n`;
    case 'text':
      return `${s}  Event: ${JSON.stringify(d.text)}\n`;
    case 'separator':
      return `${s}  Event: "${d.value}"\n`;
    case 'startup-locality':
      return `${s}  Event:\n    Signature: StartupLocality\n    StartupLocality: ${d.locality}\n`;
    case 'spec-id':
      return `${s}  SpecID:\n    specVersion: ${d.specVersion}\n    platformClass: ${d.platformClass}\n    algorithms: ${d.algorithms.map((a) => `0x${a.algId.toString(16)}/${a.digestSize}`).join(', ')}\n`;
    case 'no-action':
      return `${s}  Event:\n    Signature: ${JSON.stringify(d.signature)}\n`;
    case 'malformed':
      return `${s}  EventMalformed: ${JSON.stringify(d.reason)}\n`;
  }
}

function write(out: NodeJS.WritableStream, s: string): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(s, (err) => (err && (err as NodeJS.ErrnoException).code !== 'EPIPE' ? reject(err) : resolve()));
  });
}
