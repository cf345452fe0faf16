import ms from 'ms';

/**
 * A duration as people write it (`90s`, `15m`, `1h`, `7d`, `1.5h`, `2 days`) in milliseconds, parsed
 * by `ms` — the one duration syntax of the CLI (token lifetimes, audit --since). Undefined when it
 * is not a positive duration. A bare number is refused: its unit would be a guess.
 */
export function parseDurationMs(text: string): number | undefined {
  if (text.length > 100 || /^\s*[\d.]+\s*$/.test(text)) return undefined;
  const v = ms(text as ms.StringValue);
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
}
