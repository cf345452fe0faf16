import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { EventLogError, decodeEvent, parseEventLog, preferredBank, replayEventLog, type DecodedEvent, type EventLog } from '@keyhold/verifier/eventlog';
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
  const sink = new OutputSink();
  sink.w(json ? '{"events":[' : '---\nevents:\n');
  for (let i = 0; i < log.events.length; i++) {
    const ev = decodeEvent(log.events[i] as EventLog['events'][number], bank);
    if (json) {
      if (i > 0) sink.w(',');
      sink.w(JSON.stringify(ev));
    } else {
      formatEvent(ev, sink);
    }
    if (sink.hasPending()) await sink.drain(io.stdout);
  }
  if (json) {
    sink.w(`],"pcrs":${JSON.stringify(pcrs)}${Object.keys(replayErrors).length > 0 ? `,"replayErrors":${JSON.stringify(replayErrors)}` : ''}}\n`);
  } else {
    sink.w('pcrs:\n');
    for (const [b, values] of Object.entries(pcrs)) {
      sink.w(`  ${b}:\n`);
      for (const [pcr, hex] of Object.entries(values)) sink.w(`    ${pcr.padStart(2)} : 0x${hex}\n`);
    }
  }
  await sink.drain(io.stdout, true);
  const failed = Object.entries(replayErrors);
  if (failed.length > 0) {
    io.stderr.write(`keyhold eventlog: ${file}: cannot replay ${failed.map(([b, m]) => `${b}: ${m}`).join('; ')}\n`);
    return EXIT.FAIL;
  }
  return EXIT.OK;
}

const CHUNK_BYTES = 1 << 22;

/**
 * Collects output in large buffers: writing many small strings into a Buffer is several times
 * cheaper than concatenating them and encoding the result (measured on the 100k-event benchmark).
 */
class OutputSink {
  private buf: Buffer = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  private pos = 0;
  private pending: Buffer[] = [];

  w(s: string): void {
    if (this.pos + s.length * 3 > CHUNK_BYTES) {
      this.spill();
      if (s.length * 3 > CHUNK_BYTES) {
        this.pending.push(Buffer.from(s, 'utf8'));
        return;
      }
    }
    // Short ASCII strings are copied in JS: cheaper than a native encode call (measured: ~16 chars).
    if (s.length <= 16) {
      const b = this.buf;
      let p = this.pos;
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) {
          this.pos += b.write(s, this.pos);
          return;
        }
        b[p++] = c;
      }
      this.pos = p;
      return;
    }
    this.pos += this.buf.write(s, this.pos);
  }

  hasPending(): boolean {
    return this.pending.length > 0;
  }

  async drain(out: NodeJS.WritableStream, final = false): Promise<void> {
    if (final) this.spill();
    const chunks = this.pending;
    this.pending = [];
    for (const c of chunks) {
      await write(out, c);
      // The stream is done with the chunk once its callback ran: reuse the memory.
      if (c.buffer.byteLength === CHUNK_BYTES) this.free.push(Buffer.from(c.buffer, 0, CHUNK_BYTES));
    }
  }

  private free: Buffer[] = [];

  private spill(): void {
    if (this.pos === 0) return;
    this.pending.push(this.buf.subarray(0, this.pos));
    this.buf = this.free.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
    this.pos = 0;
  }
}

function formatEvent(ev: DecodedEvent, o: OutputSink): void {
  // One template per event: V8 builds it as a rope that a single native write flattens and encodes.
  let s = `- EventNum: ${ev.index}\n  PCRIndex: ${ev.pcr}\n  EventType: ${ev.typeName}\n  Digests:\n`;
  const dg = ev.digests;
  if (dg.sha1 !== undefined) s += `  - AlgorithmId: sha1\n    Digest: "${dg.sha1}"\n`;
  if (dg.sha256 !== undefined) s += `  - AlgorithmId: sha256\n    Digest: "${dg.sha256}"\n`;
  if (dg.sha384 !== undefined) s += `  - AlgorithmId: sha384\n    Digest: "${dg.sha384}"\n`;
  if (dg.sha512 !== undefined) s += `  - AlgorithmId: sha512\n    Digest: "${dg.sha512}"\n`;
  s += `  EventSize: ${ev.dataLength}\n  DataCoveredByDigest: ${ev.dataVerified ? 'yes' : 'no'}\n`;
  const d = ev.details;
  if (d !== undefined) s += formatDetails(d);
  o.w(s);
}

function formatDetails(d: NonNullable<DecodedEvent['details']>): string {
  switch (d.kind) {
    case 'efi-variable': {
      let s = `  Event:\n    VariableName: ${d.variableGuid}\n    UnicodeName: ${d.name}\n    VariableDataLength: ${d.dataLength}\n`;
      if (d.enabled !== undefined) s += d.enabled ? '    Enabled: Yes\n' : '    Enabled: No\n';
      if (d.text !== undefined) s += `    Text: ${JSON.stringify(d.text)}\n`;
      if (d.signatures !== undefined) {
        s += '    Signatures:\n';
        for (const sig of d.signatures) s += `    - Type: ${sig.signatureType}\n      Owner: ${sig.owner}\n      SHA256: "${sig.sha256}"\n`;
      }
      return s;
    }
    case 'boot-application':
      return `  Event:\n    ImageLength: ${d.imageLength}\n    DevicePath: ${JSON.stringify(d.devicePath)}\n`;
    case 'ipl':
      return `  Event:\n    String: ${JSON.stringify(d.text)}\n`;
    case 'text':
      return `  Event: ${JSON.stringify(d.text)}\n`;
    case 'separator':
      return `  Event: "${d.value}"\n`;
    case 'startup-locality':
      return `  Event:\n    Signature: StartupLocality\n    StartupLocality: ${d.locality}\n`;
    case 'spec-id':
      return `  SpecID:\n    specVersion: ${d.specVersion}\n    platformClass: ${d.platformClass}\n    algorithms: ${d.algorithms.map((a) => `0x${a.algId.toString(16)}/${a.digestSize}`).join(', ')}\n`;
    case 'no-action':
      return `  Event:\n    Signature: ${JSON.stringify(d.signature)}\n`;
    case 'malformed':
      return `  EventMalformed: ${JSON.stringify(d.reason)}\n`;
  }
}

function write(out: NodeJS.WritableStream, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(chunk, (err) => (err && (err as NodeJS.ErrnoException).code !== 'EPIPE' ? reject(err) : resolve()));
  });
}
