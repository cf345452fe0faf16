import { readFileSync, statSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { EventLogError, decodeEvent, parseEventLog, preferredBank, replayEventLog, type BankReplay, type EventLog, type EventLogBank } from '@keyhold/verifier/eventlog';
import { EXIT, type CommandIo } from '../command.js';
import { renderEvent, renderPcrs, renderSpecIdEvent, renderedOnlyAscii, yamlHeader } from './eventlog-yaml.js';

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

const DESCRIPTION = [
  "Parses a TCG PC Client event log (binary_bios_measurements; SHA-1 or crypto-agile) and prints every event and the PCR values of each bank replayed per the TCG PC Client rules, as YAML in tpm2_eventlog's layout (version, events, pcrs). Nothing printed is verified: only a match against a quote makes it evidence.",
  'Banks that cannot be replayed (an event carries no digest for them) are reported on stderr and left out of pcrs; the exit status is non-zero only when no bank replays.',
].join('\n\n');

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

interface Options {
  json?: boolean;
  maxBytes: number;
}

/** `keyhold eventlog FILE [--json] [--max-bytes N]`. Returns the exit status. */
export async function run(argv: string[], io: CommandIo): Promise<number> {
  const program = new Command('keyhold eventlog')
    .description(DESCRIPTION)
    .argument('<file>', 'the event log (e.g. /sys/kernel/security/tpm0/binary_bios_measurements)')
    .option('--json', 'print {"events":[...],"pcrs":{bank:{pcr:hex}},"replayErrors":{bank:message}} instead of YAML')
    .option('--max-bytes <n>', 'refuse larger files', positiveInteger, DEFAULT_MAX_BYTES)
    .helpOption('-h, --help', 'show this help')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  }
  const opts = program.opts<Options>();
  const file = program.args[0] as string;

  let bytes: Uint8Array;
  try {
    // Synchronous reads: the command has nothing else to do meanwhile, and one read is cheaper.
    const st = statSync(file);
    if (st.size > opts.maxBytes) {
      io.stderr.write(`keyhold eventlog: ${file}: larger than ${opts.maxBytes} bytes\n`);
      return EXIT.FAIL;
    }
    bytes = readFileSync(file);
  } catch (err) {
    io.stderr.write(`keyhold eventlog: ${file}: ${(err as NodeJS.ErrnoException).code ?? 'cannot read'}\n`);
    return EXIT.FAIL;
  }
  let log: EventLog;
  let replays: Map<EventLogBank, BankReplay>;
  try {
    log = parseEventLog(bytes);
    replays = replayEventLog(log);
  } catch (err) {
    if (!(err instanceof EventLogError)) throw err;
    io.stderr.write(`keyhold eventlog: ${file}: ${err.message} (${err.code})\n`);
    return EXIT.FAIL;
  }
  const replayErrors: Record<string, string> = {};
  for (const [bank, r] of replays) if (!r.ok) replayErrors[bank] = `${r.error.message} (${r.error.code})`;

  // A reader that goes away (`| head`) ends the output; it is not an error of the log.
  io.stdout.on('error', () => undefined);
  const sink = new OutputSink(io.stdout);
  if (opts.json === true) await writeJson(log, replays, replayErrors, sink);
  else await writeYaml(log, replays, sink);
  await sink.end();

  const failed = Object.entries(replayErrors);
  for (const [bank, message] of failed) io.stderr.write(`keyhold eventlog: ${file}: cannot replay ${bank}: ${message}\n`);
  if (log.banks.length === 0) io.stderr.write(`keyhold eventlog: ${file}: the log declares no bank this tool can replay\n`);
  return failed.length < log.banks.length ? EXIT.OK : EXIT.FAIL;
}

async function writeYaml(log: EventLog, replays: ReadonlyMap<EventLogBank, BankReplay>, sink: OutputSink): Promise<void> {
  sink.w(yamlHeader());
  const events = log.events;
  for (let i = 0; i < events.length; i++) {
    const ev = events[i] as EventLog['events'][number];
    const text = i === 0 && log.format === 'crypto-agile' ? renderSpecIdEvent(ev) : renderEvent(ev);
    // Latin-1 encodes ASCII as UTF-8 does, and faster: used while no rendered string was non-ASCII.
    sink.w(text, renderedOnlyAscii());
    if (sink.full()) await sink.flush();
  }
  sink.w(renderPcrs(replays));
}

async function writeJson(log: EventLog, replays: ReadonlyMap<EventLogBank, BankReplay>, replayErrors: Record<string, string>, sink: OutputSink): Promise<void> {
  const bank = preferredBank(log);
  sink.w('{"events":[');
  for (let i = 0; i < log.events.length; i++) {
    if (i > 0) sink.w(',');
    sink.w(JSON.stringify(decodeEvent(log.events[i] as EventLog['events'][number], bank)));
    if (sink.full()) await sink.flush();
  }
  const pcrs: Record<string, Record<string, string>> = {};
  for (const [b, r] of replays) {
    if (!r.ok) continue;
    const out: Record<string, string> = {};
    for (const [pcr, v] of [...r.pcrs].sort((x, y) => x[0] - y[0])) out[String(pcr)] = Buffer.from(v).toString('hex');
    pcrs[b] = out;
  }
  sink.w(`],"pcrs":${JSON.stringify(pcrs)}${Object.keys(replayErrors).length > 0 ? `,"replayErrors":${JSON.stringify(replayErrors)}` : ''}}\n`);
}

const CHUNK_BYTES = 1 << 20;

/**
 * Streams the output in 1 MiB chunks: each event's text is encoded straight into the current chunk
 * (cheaper than concatenating strings and encoding the result), and a full chunk is written, with
 * back-pressure, before the next events are rendered. Memory holds the log and about two chunks.
 */
class OutputSink {
  private buf: Buffer = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  private pos = 0;
  private spare: Buffer | undefined;

  constructor(private readonly out: NodeJS.WritableStream) {}

  w(s: string, ascii = false): void {
    // A UTF-16 code unit takes at most 3 bytes in UTF-8.
    const max = ascii ? s.length : s.length * 3;
    if (this.pos + max > CHUNK_BYTES) {
      this.spill();
      if (max > CHUNK_BYTES) {
        this.pending.push(Buffer.from(s, ascii ? 'latin1' : 'utf8'));
        return;
      }
    }
    this.pos += this.buf.write(s, this.pos, ascii ? 'latin1' : 'utf8');
  }

  private pending: Buffer[] = [];

  full(): boolean {
    return this.pending.length > 0 || this.pos > CHUNK_BYTES - 64 * 1024;
  }

  async flush(): Promise<void> {
    this.spill();
    const chunks = this.pending;
    this.pending = [];
    for (const c of chunks) {
      await write(this.out, c);
      // The stream is done with a chunk once its callback ran: reuse the memory.
      if (c.buffer.byteLength === CHUNK_BYTES && c.byteOffset === 0) this.spare = Buffer.from(c.buffer, 0, CHUNK_BYTES);
    }
  }

  async end(): Promise<void> {
    await this.flush();
  }

  private spill(): void {
    if (this.pos === 0) return;
    this.pending.push(this.buf.subarray(0, this.pos));
    this.buf = this.spare ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
    this.spare = undefined;
    this.pos = 0;
  }
}

function write(out: NodeJS.WritableStream, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(chunk, (err) => (err && (err as NodeJS.ErrnoException).code !== 'EPIPE' ? reject(err) : resolve()));
  });
}
