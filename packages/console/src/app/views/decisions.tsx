import { useEffect, useState } from 'preact/hooks';
import { ApiError, type AdminApi } from '../api/admin-api.js';
import { followEvents, parseKbsEvent, type FollowStatus, type KbsEvent } from '../api/follow-events.js';
import type { AuditRecordView } from '../audit/verify-chain.js';
import { Problem } from '../components/problem.js';
import { repoPath, short, when } from '../components/format.js';
import { ScrollBox } from '../components/scroll-box.js';

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
const BACKLOG = 200;
const POLL_MS = 3000;
const DECISION_KINDS = new Set(['attest', 'release', 'deny']);
const FILTERS = [
  { id: '', label: 'everything' },
  { id: 'attestation', label: 'attestations' },
  { id: 'release', label: 'releases' },
  { id: 'denial', label: 'denials' },
  { id: 'node.', label: 'node state changes' },
] as const;

/** A release or denial names the outcome by its type; attestations carry their EAR status. */
const OUTCOME: Readonly<Record<string, string>> = { release: 'allow', denial: 'deny' };

function fromEvent(e: KbsEvent): Decision {
  // What was released (or refused) to whom: the resource, and the node that asked.
  const subject = e.resource !== undefined ? `${e.resource}${e.node !== undefined ? ` → ${short(e.node, 20)}` : ''}` : (e.node ?? e.repository ?? '');
  return { key: `e${e.id}`, at: e.at, type: e.type, subject, status: e.status ?? OUTCOME[e.type] ?? '', policy: e.policy ?? '', reason: e.reason ?? '' };
}

function fromAudit(r: AuditRecordView): Decision {
  const f = r.fields;
  const policy = f['policyId'] !== undefined ? `${String(f['policyId'])}${f['policyVersion'] !== undefined ? `@${String(f['policyVersion'])}` : ''}` : '';
  const type = r.kind === 'attest' ? 'attestation' : r.kind === 'deny' ? 'denial' : r.kind;
  return { key: `a${r.seq}`, at: r.time, type, subject: String(f['resourcePath'] ?? f['node'] ?? ''), status: String(f['verdict'] ?? ''), policy, reason: String(f['reason'] ?? '') };
}

type Mode = FollowStatus | { readonly kind: 'audit' } | { readonly kind: 'failed'; readonly error: unknown };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The streams this owner may follow: every event (unlimited roles), else its named repositories' own. */
async function streamPaths(api: AdminApi, repositories: readonly string[], signal: AbortSignal): Promise<{ paths: string[]; backlog: KbsEvent[][] }> {
  const backlogOf = async (path: string): Promise<KbsEvent[]> => {
    const page = await api.get<{ events?: unknown[] }>(`${path}?format=json&limit=${BACKLOG}`, signal);
    return (page.events ?? []).flatMap((e) => parseKbsEvent({ event: 'message', data: JSON.stringify(e) }) ?? []);
  };
  try {
    return { paths: ['/kbs/v0/admin/events'], backlog: [await backlogOf('/kbs/v0/admin/events')] };
  } catch (err) {
    // SECURITY (the KBS enforces it; the page only follows): a repository-limited role reads the
    // events of its own repositories on the path that names each one.
    if (!(err instanceof ApiError) || err.status !== 403 || repositories.length === 0) throw err;
    const paths = repositories.map((r) => `/kbs/v0/resources/${repoPath(r)}/events`);
    return { paths, backlog: await Promise.all(paths.map(backlogOf)) };
  }
}

/**
 * Decisions: the KBS's events stream, live (attestations, releases, denials and node state changes,
 * with reasons and policy id@version): the newest events first, then the stream, resumed from the
 * last id whenever it ends (the admin token's expiry) or drops. A repository-limited owner follows
 * its repositories' streams. On a KBS without the stream it says so and shows the decisions recorded
 * in the audit trail instead, polled every few seconds.
 */
export function DecisionsView({ api, repositories }: { api: AdminApi; repositories: readonly string[] }) {
  const [rows, setRows] = useState<Decision[]>([]);
  const [mode, setMode] = useState<Mode>({ kind: 'connecting' });
  const [streamProblem, setStreamProblem] = useState<unknown>();
  const [filter, setFilter] = useState('');

  useEffect(() => {
    const ctl = new AbortController();
    const seen = new Set<string>();
    const add = (ds: Decision[]) => {
      const fresh = ds.filter((d) => !seen.has(d.key));
      for (const d of fresh) seen.add(d.key);
      if (fresh.length > 0) setRows((old) => [...fresh.reverse(), ...old].slice(0, MAX_ROWS));
    };
    async function live(): Promise<void> {
      const { paths, backlog } = await streamPaths(api, repositories, ctl.signal);
      backlog.forEach((events) => add(events.map(fromEvent)));
      await Promise.all(
        paths.map((path, i) =>
          followEvents(api, {
            path,
            signal: ctl.signal,
            ...(backlog[i]?.at(-1) !== undefined ? { after: backlog[i]!.at(-1)!.id } : {}),
            onEvent: (e) => add([fromEvent(e)]),
            onStatus: (s) => !ctl.signal.aborted && setMode(s),
          }),
        ),
      );
    }
    async function fromAuditTrail(): Promise<void> {
      setMode({ kind: 'audit' });
      const first = await api.get<{ head?: { seq: number } }>('/kbs/v0/audit?limit=1', ctl.signal);
      let sinceSeq = Math.max(1, (first.head?.seq ?? 0) - 199);
      while (!ctl.signal.aborted) {
        const page = await api.get<{ records: AuditRecordView[] }>(`/kbs/v0/audit?sinceSeq=${sinceSeq}&limit=1000`, ctl.signal);
        const last = page.records.at(-1);
        if (last !== undefined) sinceSeq = last.seq + 1;
        add(page.records.filter((r) => DECISION_KINDS.has(r.kind)).map(fromAudit));
        await sleep(POLL_MS);
      }
    }
    live()
      .catch(async (err: unknown) => {
        if (ctl.signal.aborted) return;
        // Only a KBS without the events endpoint falls back to the audit trail (which it then must have).
        if (!(err instanceof ApiError) || !err.endpointMissing) throw err;
        setStreamProblem(err);
        await fromAuditTrail();
      })
      .catch((error: unknown) => !ctl.signal.aborted && setMode({ kind: 'failed', error }));
    return () => ctl.abort();
  }, [api, repositories.join(',')]);

  const shown = filter === '' ? rows : rows.filter((d) => (filter.endsWith('.') ? d.type.startsWith(filter) : d.type === filter));
  return (
    <>
      {streamProblem !== undefined && <Problem error={streamProblem} what="the live decision stream" />}
      <div class="toolbar">
        <label for="decision-filter">Show</label>
        <select id="decision-filter" value={filter} onChange={(e) => setFilter((e.currentTarget as HTMLSelectElement).value)}>
          {FILTERS.map((f) => (
            <option key={f.id} value={f.id}>
              {f.label}
            </option>
          ))}
        </select>
        <p class="mode" role="status" data-testid="decisions-mode">
          {mode.kind === 'connecting' && 'Connecting…'}
          {mode.kind === 'live' && 'Live: new decisions appear at the top.'}
          {mode.kind === 'reconnecting' && `Reconnecting in ${Math.ceil(mode.inMs / 1000)} s (${mode.why}); nothing is lost: the stream resumes after the last event shown.`}
          {mode.kind === 'audit' && 'Showing decisions recorded in the audit trail (refreshed every few seconds).'}
        </p>
      </div>
      {mode.kind === 'failed' && <Problem error={mode.error} what="decisions" />}
      <ScrollBox label="Decisions">
        <table data-testid="decisions-table">
          <caption>
            {shown.length} decision{shown.length === 1 ? '' : 's'} (newest first)
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
            {shown.map((d) => (
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
      </ScrollBox>
    </>
  );
}
