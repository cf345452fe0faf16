import { useEffect, useState } from 'preact/hooks';
import type { AdminApi } from '../api/admin-api.js';
import { TimeChart } from '../components/chart.js';
import { Loading, Problem } from '../components/problem.js';
import { ratesBetween, type HealthRates, type HealthSample } from '../health/rates.js';

interface HealthAnswer extends Omit<HealthSample, 'atMs'> {
  readonly replica: string;
  readonly build: string;
  /** The KBS state backend (sessions, nodes, reference values, policies, audit); absent on older KBSes. */
  readonly state?: { readonly backend: string; readonly ok: boolean };
  readonly storage: { readonly backend: string; readonly ok: boolean };
  readonly policies: { readonly ok: boolean | null };
  readonly audit: { readonly enabled: boolean; readonly head?: { readonly seq: number } | null };
  readonly latencyMs: { readonly p50: number | null; readonly p99: number | null };
}

const POLL_MS = 2000;
const KEEP = 90;
/** The charts' time window: the samples kept. */
const WINDOW_S = (POLL_MS * KEEP) / 1000;

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
const fmt = (v: number | null | undefined, digits = 2): string => (v === null || v === undefined ? '—' : v.toFixed(digits));

/** Health: attestations/s, denials/s and p99 latency over time, and the state and storage backends' state. */
export function HealthView({ api }: { api: AdminApi }) {
  const [latest, setLatest] = useState<HealthAnswer | undefined>();
  const [rates, setRates] = useState<HealthRates[]>([]);
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    const ctl = new AbortController();
    let prev: HealthSample | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const h = await api.get<HealthAnswer>('/kbs/v0/admin/health', ctl.signal);
        const sample: HealthSample = { atMs: Date.now(), counters: h.counters, latencyBuckets: h.latencyBuckets };
        if (prev !== undefined) {
          const r = ratesBetween(prev, sample);
          setRates((old) => [...old, r].slice(-KEEP));
        }
        prev = sample;
        setLatest(h);
        setError(undefined);
      } catch (err) {
        if (ctl.signal.aborted) return;
        setError(err);
      }
      if (!ctl.signal.aborted) timer = setTimeout(tick, POLL_MS);
    };
    void tick();
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
  }, [api]);

  const xs = rates.map((r) => r.atMs);
  const last = rates.at(-1);
  return (
    <>
      {error !== undefined && <Problem error={error} what="the health summary" />}
      {latest === undefined && error === undefined && <Loading what="health" />}
      {latest !== undefined && (
        <dl class="tiles" data-testid="health-tiles">
          {latest.state !== undefined && (
            <div class={`tile ${latest.state.ok ? 'tile-ok' : 'tile-bad'}`} data-testid="health-state">
              <dt>State backend</dt>
              <dd>
                {latest.state.backend}: {latest.state.ok ? 'ok' : 'DOWN'}
              </dd>
            </div>
          )}
          <div class={`tile ${latest.storage.ok ? 'tile-ok' : 'tile-bad'}`}>
            <dt>Secret storage</dt>
            <dd>
              {latest.storage.backend}: {latest.storage.ok ? 'ok' : 'DOWN'}
            </dd>
          </div>
          <div class={`tile ${latest.policies.ok === false ? 'tile-bad' : 'tile-ok'}`}>
            <dt>Policy store</dt>
            <dd>{latest.policies.ok === null ? 'not enabled' : latest.policies.ok ? 'ok' : 'DOWN'}</dd>
          </div>
          <div class="tile">
            <dt>Audit trail</dt>
            <dd>{latest.audit.enabled ? `${latest.audit.head?.seq ?? 0} records` : 'off'}</dd>
          </div>
          <div class="tile">
            <dt>Replica</dt>
            <dd>{latest.replica}</dd>
          </div>
          <div class="tile">
            <dt>Totals</dt>
            <dd>
              {plural(latest.counters.attestations, 'attestation')}, {plural(latest.counters.denials, 'denial')}, {plural(latest.counters.releases, 'release')}
            </dd>
          </div>
        </dl>
      )}
      <div class="charts">
        <TimeChart title="Attestations" unit="per s" xs={xs} ys={rates.map((r) => r.attestationsPerSec)} summary={`latest ${fmt(last?.attestationsPerSec)} per second`} windowS={WINDOW_S} />
        <TimeChart title="Policy denials" unit="per s" xs={xs} ys={rates.map((r) => r.denialsPerSec)} summary={`latest ${fmt(last?.denialsPerSec)} per second`} windowS={WINDOW_S} />
        <TimeChart title="p99 latency of protocol requests" unit="ms" xs={xs} ys={rates.map((r) => r.p99Ms)} summary={`latest ${fmt(last?.p99Ms, 1)} ms (since start: ${fmt(latest?.latencyMs.p99, 1)} ms)`} windowS={WINDOW_S} />
      </div>
    </>
  );
}
