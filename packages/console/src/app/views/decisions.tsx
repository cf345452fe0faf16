import { useEffect, useState } from 'preact/hooks';
import { ApiError, type AdminApi } from '../api/admin-api.js';
import type { AuditRecordView } from '../audit/verify-chain.js';
import { Problem } from '../components/problem.js';
import { when } from '../components/format.js';

/** `KbsEvent` of the events stream (API contract). */
interface KbsEvent {
  readonly id: string;
  readonly type: string;
  readonly at: string;
  readonly node?: string;
  readonly spiffeId?: string;
  readonly resource?: string;
  readonly policy?: string;
  readonly status?: string;
  readonly reason?: string;
  readonly repository?: string;
}

interface Decision {
  readonly key: string;
  readonly at: string;
  readonly type: string;
  readonly subject: string;
  readonly status: string;
  readonly policy: string;
  readonly reason: string;
}

const MAX_ROWS = 500;
const POLL_MS = 3000;
const DECISION_KINDS = new Set(['attest', 'release', 'deny']);

function fromEvent(e: KbsEvent): Decision {
  return { key: `e${e.id}`, at: e.at, type: e.type, subject: e.resource ?? e.node ?? e.repository ?? '', status: e.status ?? '', policy: e.policy ?? '', reason: e.reason ?? '' };
}

function fromAudit(r: AuditRecordView): Decision {
  const f = r.fields;
  const policy = f['policyId'] !== undefined ? `${String(f['policyId'])}${f['policyVersion'] !== undefined ? `@${String(f['policyVersion'])}` : ''}` : '';
  const type = r.kind === 'attest' ? 'attestation' : r.kind === 'deny' ? 'denial' : r.kind;
  return { key: `a${r.seq}`, at: r.time, type, subject: String(f['resourcePath'] ?? f['node'] ?? ''), status: String(f['verdict'] ?? ''), policy, reason: String(f['reason'] ?? '') };
}

type Mode = { kind: 'connecting' } | { kind: 'live' } | { kind: 'audit' } | { kind: 'failed'; error: unknown };

/**
 * Decisions: the live events stream (attestations, releases, denials with reasons and policy
 * id@version). On a KBS without the stream it says so and shows the decisions recorded in the
 * audit trail instead, polled every few seconds.
 */
export function DecisionsView({ api }: { api: AdminApi }) {
  const [rows, setRows] = useState<Decision[]>([]);
  const [mode, setMode] = useState<Mode>({ kind: 'connecting' });
  const [streamProblem, setStreamProblem] = useState<unknown>();

  useEffect(() => {
    const ctl = new AbortController();
    const add = (d: Decision[]) => setRows((old) => [...d.reverse(), ...old].slice(0, MAX_ROWS));
    async function live(): Promise<void> {
      let after: string | undefined;
      while (!ctl.signal.aborted) {
        setMode({ kind: 'live' });
        after =
          (await api.stream(`/kbs/v0/admin/events${after !== undefined ? `?after=${encodeURIComponent(after)}` : ''}`, (e) => {
            try {
              const ev = JSON.parse(e.data) as KbsEvent;
              if (['attestation', 'release', 'denial'].includes(ev.type) || ev.type.startsWith('node.')) add([fromEvent(ev)]);
            } catch {
              // a frame that is not a KbsEvent is skipped
            }
          }, ctl.signal)) ?? after;
        // The stream ends when the admin token expires: reconnect (a fresh token) from the last id.
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    async function fromAuditTrail(): Promise<void> {
      setMode({ kind: 'audit' });
      let sinceSeq = 1;
      const first = await api.get<{ head?: { seq: number } }>('/kbs/v0/audit?limit=1', ctl.signal);
      sinceSeq = Math.max(1, (first.head?.seq ?? 0) - 199);
      while (!ctl.signal.aborted) {
        const page = await api.get<{ records: AuditRecordView[] }>(`/kbs/v0/audit?sinceSeq=${sinceSeq}&limit=1000`, ctl.signal);
        const last = page.records.at(-1);
        if (last !== undefined) sinceSeq = last.seq + 1;
        const ds = page.records.filter((r) => DECISION_KINDS.has(r.kind)).map(fromAudit);
        if (ds.length > 0) add(ds);
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    }
    live()
      .catch(async (err: unknown) => {
        if (ctl.signal.aborted) return;
        if (!(err instanceof ApiError) || !(err.endpointMissing || err.status === 403)) throw err;
        setStreamProblem(err);
        await fromAuditTrail();
      })
      .catch((error: unknown) => !ctl.signal.aborted && setMode({ kind: 'failed', error }));
    return () => ctl.abort();
  }, [api]);

  return (
    <>
      {streamProblem !== undefined && <Problem error={streamProblem} what="the live decision stream" />}
      <p class="mode" role="status" data-testid="decisions-mode">
        {mode.kind === 'connecting' && 'Connecting…'}
        {mode.kind === 'live' && 'Live: new decisions appear at the top.'}
        {mode.kind === 'audit' && 'Showing decisions recorded in the audit trail (refreshed every few seconds).'}
      </p>
      {mode.kind === 'failed' && <Problem error={mode.error} what="decisions" />}
      <div class="table-wrap">
        <table data-testid="decisions-table">
          <caption>
            {rows.length} decision{rows.length === 1 ? '' : 's'} (newest first)
          </caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Type</th>
              <th scope="col">Node or resource</th>
              <th scope="col">Outcome</th>
              <th scope="col">Policy</th>
              <th scope="col">Reason</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((d) => (
              <tr key={d.key}>
                <td>{when(d.at)}</td>
                <td>{d.type}</td>
                <td class="wrap">
                  <code>{d.subject}</code>
                </td>
                <td>{d.status !== '' ? <span class={`badge badge-${d.status}`}>{d.status}</span> : ''}</td>
                <td>{d.policy}</td>
                <td class="wrap">{d.reason}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
