import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CliError, UsageError } from './errors.js';
import { EXIT } from './exit-codes.js';
import { Command, InvalidArgumentError } from 'commander';
import { runProgram, type ProgramContext } from './run-program.js';

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (b: Buffer) => (out += b.toString()));
  stderr.on('data', (b: Buffer) => (err += b.toString()));
  return { io: { stdout, stderr }, out: () => out, err: () => err };
}

/** A small program shaped like keyhold: a global --url/--json, a group with a command, a failing command. */
function build(ctx: ProgramContext, seen: Record<string, unknown>[]): Command {
  const p = new Command('tool').option('--url <url>', 'where').option('--json', 'json');
  const group = p.command('config').description('a group');
  group
    .command('set-resource')
    .requiredOption('--path <path>', 'the path')
    .option('--count <n>', 'a number', (v: string) => {
      if (!/^\d+$/.test(v)) throw new InvalidArgumentError('not a number');
      return Number(v);
    })
    .action(
      ctx.action(async (o: Record<string, unknown>, cmd: Command) => {
        seen.push({ ...cmd.optsWithGlobals(), ...o });
        return o['path'] === 'deny' ? EXIT.DENIED : EXIT.OK;
      }),
    );
  p.command('fail')
    .argument('<what>')
    .action(
      ctx.action(async (what: string) => {
        if (what === 'usage') throw new UsageError('bad thing', { hint: 'do this' });
        if (what === 'typed') throw new CliError('NOPE', 'refused', { exitCode: EXIT.NOT_FOUND });
        if (what === 'file') {
          const e = Object.assign(new Error("ENOENT: no such file or directory, open 'x.jwt'"), { code: 'ENOENT', syscall: 'open', path: 'x.jwt' });
          throw e;
        }
        throw new Error('boom');
      }),
    );
  return p;
}

async function run(argv: string[]) {
  const t = io();
  const seen: Record<string, unknown>[] = [];
  const code = await runProgram((ctx) => build(ctx, seen), argv, t.io);
  return { code, out: t.out(), err: t.err(), seen };
}

describe('runProgram: the conventions every Keyhold binary shares', () => {
  it('--help goes to stdout with exit 0, at any level (and `help CMD`)', async () => {
    for (const argv of [['--help'], ['config', '--help'], ['config', 'set-resource', '-h'], ['help', 'config']]) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(0);
      expect(r.out).toMatch(/^Usage: tool/);
      expect(r.err).toBe('');
    }
  });

  it('a missing command word shows the help on stderr, exit 2', async () => {
    for (const argv of [[], ['config']]) {
      const r = await run(argv);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/^Usage: tool/);
      expect(r.out).toBe('');
    }
  });

  it('takes global options before or after the command', async () => {
    const a = await run(['--url', 'U', 'config', 'set-resource', '--path', 'p']);
    const b = await run(['config', 'set-resource', '--path', 'p', '--url', 'U']);
    const c = await run(['config', '--url', 'U', 'set-resource', '--path', 'p']);
    for (const r of [a, b, c]) {
      expect(r.code).toBe(0);
      expect(r.seen).toEqual([{ url: 'U', path: 'p' }]);
    }
  });

  it('usage errors exit 2 with "did you mean" for unknown commands and flags', async () => {
    const cmd = await run(['confg']);
    expect(cmd.code).toBe(2);
    expect(cmd.err).toBe("tool: unknown command 'confg'\n  hint: did you mean config? see 'tool --help'\n");
    const sub = await run(['config', 'set-resouce']);
    expect(sub.err).toMatch(/^tool config: unknown command 'set-resouce'\n {2}hint: did you mean set-resource\?/);
    const flag = await run(['config', 'set-resource', '--path', 'p', '--pth', 'p']);
    expect(flag.code).toBe(2);
    expect(flag.err).toMatch(/^tool config set-resource: unknown option '--pth'\n {2}hint: did you mean --path\?/);
    expect(flag.seen).toEqual([]);
    expect((await run(['config', 'set-resource'])).err).toMatch(/required option '--path <path>' not specified/);
    expect((await run(['config', 'set-resource', '--path', 'p', '--count', 'x'])).code).toBe(2);
    expect((await run(['fail'])).code).toBe(2);
  });

  it("the action's number is the exit code; thrown errors are one line (+ hint) with their exit code", async () => {
    expect((await run(['config', 'set-resource', '--path', 'deny'])).code).toBe(3);
    const usage = await run(['fail', 'usage']);
    expect([usage.code, usage.err]).toEqual([2, 'tool fail: bad thing\n  hint: do this\n']);
    const typed = await run(['fail', 'typed']);
    expect([typed.code, typed.err]).toEqual([4, 'tool fail: refused\n']);
    const file = await run(['fail', 'file']);
    expect([file.code, file.err]).toEqual([1, 'tool fail: cannot read x.jwt: no such file or directory\n']);
    const other = await run(['fail', 'other']);
    expect([other.code, other.err]).toEqual([1, 'tool fail: internal error: boom\n']);
  });

  it('with --json every error is one JSON line on stderr, usage errors included', async () => {
    const typed = await run(['fail', 'usage', '--json']);
    expect(typed.code).toBe(2);
    expect(JSON.parse(typed.err)).toEqual({ error: { code: 'USAGE', message: 'bad thing', hint: 'do this', exit: 2 } });
    const unknown = await run(['--json', 'config', 'set-resource', '--path', 'p', '--pth', 'p']);
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.err)).toMatchObject({ error: { code: 'USAGE', message: "unknown option '--pth'", exit: 2 } });
    expect(unknown.err.trim().split('\n')).toHaveLength(1);
    // A --json after "--" is an argument, not the flag.
    expect((await run(['fail', 'usage', '--', '--json'])).err).toMatch(/^tool fail: /);
  });

  it('describeError maps library errors first', async () => {
    const t = io();
    const code = await runProgram((ctx) => build(ctx, []), ['fail', 'other'], t.io, { describeError: () => new CliError('MAPPED', 'mapped', { exitCode: EXIT.DENIED }) });
    expect([code, t.err()]).toEqual([3, 'tool fail: mapped\n']);
  });
});
