import { useCallback, useEffect, useState } from 'preact/hooks';

export type Loaded<T> = { readonly state: 'loading' } | { readonly state: 'ok'; readonly value: T } | { readonly state: 'error'; readonly error: unknown };

/** Run `load` when `deps` change (and on `reload()`); stale answers of an earlier run are dropped. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): [Loaded<T>, () => void] {
  const [result, setResult] = useState<Loaded<T>>({ state: 'loading' });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    setResult({ state: 'loading' });
    load(ctl.signal).then(
      (value) => !ctl.signal.aborted && setResult({ state: 'ok', value }),
      (error: unknown) => !ctl.signal.aborted && setResult({ state: 'error', error }),
    );
    return () => ctl.abort();
  }, [...deps, tick]);
  return [result, useCallback(() => setTick((t) => t + 1), [])];
}
