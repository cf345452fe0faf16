import { Option, type Command } from '@keyhold/command-line';
import { AGENT_OPTIONS, type CommonValues } from './agent-options.js';

export { AGENT_OPTIONS, type CommonValues } from './agent-options.js';

/** Add the shared flags to a command (the program: they are then accepted anywhere on the line). */
export function addAgentOptions(cmd: Command): Command {
  for (const o of AGENT_OPTIONS) cmd.addOption(new Option(o.flags, o.help));
  return cmd;
}

/**
 * The shared flags' values for the command that runs (its own and its parents'), keyed by flag
 * name. A `--no-X` flag commander folds into `X` (false) is reported as `'no-X': true`.
 */
export function commonValues(cmd: Command): CommonValues {
  const opts = cmd.optsWithGlobals<Record<string, unknown>>();
  const out: Record<string, string | boolean> = {};
  const options = new Map<string, Option>();
  for (let c: Command | null = cmd; c !== null; c = c.parent) for (const o of c.options) options.set(o.long ?? '', o);
  for (const row of AGENT_OPTIONS) {
    const long = /--([a-z0-9-]+)/.exec(row.flags)?.[1] ?? '';
    const option = options.get(`--${long}`);
    if (option === undefined) continue;
    const v = opts[option.attributeName()];
    if (option.negate) {
      if (v === false) out[long] = true;
    } else if (option.isBoolean()) {
      if (v === true) out[long] = true;
    } else if (typeof v === 'string') {
      out[long] = v;
    }
  }
  return out as CommonValues;
}
