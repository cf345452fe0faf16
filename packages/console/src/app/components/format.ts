/** Short, locale-independent renderings for tables. */
export function when(iso: string | undefined): string {
  if (iso === undefined) return '—';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function duration(ms: number | undefined): string {
  if (ms === undefined) return '—';
  const units: [number, string][] = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'min'],
    [1000, 's'],
  ];
  for (const [size, unit] of units) if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  for (const [size, unit] of units) if (ms >= size) return `${(ms / size).toFixed(1)} ${unit}`;
  return `${ms} ms`;
}

export function short(id: string | undefined, n = 16): string {
  if (id === undefined) return '—';
  return id.length > n ? `${id.slice(0, n)}…` : id;
}

export function repoPath(repo: string): string {
  return encodeURIComponent(repo);
}
