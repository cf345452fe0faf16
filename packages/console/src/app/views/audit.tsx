import { useEffect, useState } from 'preact/hooks';
import type { AdminApi } from '../api/admin-api.js';
import { verifyAuditChain, type AuditRecordView, type ChainVerification } from '../audit/verify-chain.js';
import { Loading, Problem } from '../components/problem.js';
import { useLoad } from '../components/use-load.js';
import { short, when } from '../components/format.js';
import { ScrollBox } from '../components/scroll-box.js';

const PAGE = 50;
const MAX_VERIFY_RECORDS = 100_000;

interface AuditPage {
  readonly records: AuditRecordView[];
  readonly head?: { readonly seq: number; readonly hash: string };
}

type Check = { state: 'running' } | { state: 'done'; result: ChainVerification; record?: AuditRecordView } | { state: 'error'; error: unknown };

/** Audit: the trail page by page (newest first), and the hash chain verified here in the browser. */
export function AuditView({ api }: { api: AdminApi }) {
  const [page, setPage] = useState(0);
  const [kind, setKind] = useState('');
  const [check, setCheck] = useState<Check>({ state: 'running' });
  const [data] = useLoad(
    async (signal) => {
      const head = (await api.get<AuditPage>('/kbs/v0/audit?limit=1', signal)).head;
      const last = head?.seq ?? 0;
      const from = Math.max(1, last - PAGE * (page + 1) + 1);
      const count = Math.max(0, last - PAGE * page - from + 1);
      const records = count === 0 ? [] : (await api.get<AuditPage>(`/kbs/v0/audit?sinceSeq=${from}&limit=${count}`, signal)).records;
      return { head, records: records.reverse() };
    },
    [page],
  );

  useEffect(() => {
    const ctl = new AbortController();
    setCheck({ state: 'running' });
    (async () => {
      const all = await api.get<AuditPage>(`/kbs/v0/audit?limit=${MAX_VERIFY_RECORDS}`, ctl.signal);
      const result = await verifyAuditChain(all.records, all.head !== undefined ? { anchor: all.head } : {});
      const record = result.ok ? undefined : all.records.find((r) => r.seq === result.firstBadSeq);
      if (!ctl.signal.aborted) setCheck({ state: 'done', result, ...(record !== undefined ? { record } : {}) });
    })().catch((error: unknown) => !ctl.signal.aborted && setCheck({ state: 'error', error }));
    return () => ctl.abort();
  }, [api]);

  const headSeq = data.state === 'ok' ? (data.value.head?.seq ?? 0) : 0;
  const rows = data.state === 'ok' ? data.value.records.filter((r) => kind === '' || r.kind === kind) : [];
  const bad = check.state === 'done' && !check.result.ok ? check.result.firstBadSeq : undefined;
  return (
    <>
      <div class="chain" role="status" aria-live="polite" data-testid="audit-chain">
        {check.state === 'running' && <p class="loading">Verifying the hash chain…</p>}
        {check.state === 'error' && <Problem error={check.error} what="the trail for verification" />}
        {check.state === 'done' && check.result.ok && (
          <p class="result result-ok">
            <strong>Chain verified:</strong> {check.result.count} records, seq 1 to {check.result.lastSeq}, ending at the head the KBS reports (hash <code>{short(check.result.lastHash, 16)}</code>).
          </p>
        )}
        {check.state === 'done' && !check.result.ok && (
          <div class="result result-broken">
            <p>
              <strong>Chain broken at seq {check.result.firstBadSeq}:</strong> {check.result.reason}.
            </p>
            {check.record !== undefined && <pre>{JSON.stringify(check.record, null, 2)}</pre>}
          </div>
        )}
      </div>
      <div class="toolbar">
        <label for="audit-kind">Kind</label>
        <select id="audit-kind" value={kind} onChange={(e) => setKind((e.currentTarget as HTMLSelectElement).value)}>
          <option value="">all</option>
          {['auth', 'attest', 'release', 'deny', 'admin'].map((k) => (
            <option key={k} value={k}>
              {k}
            </option>
          ))}
        </select>
        <button type="button" class="secondary" disabled={page === 0} onClick={() => setPage((p) => p - 1)}>
          Newer
        </button>
        <button type="button" class="secondary" disabled={PAGE * (page + 1) >= headSeq} onClick={() => setPage((p) => p + 1)}>
          Older
        </button>
      </div>
      {data.state === 'loading' && <Loading what="the audit trail" />}
      {data.state === 'error' && <Problem error={data.error} what="the audit trail" />}
      {data.state === 'ok' && (
        <ScrollBox label="Audit records">
          <table data-testid="audit-table">
            <caption>
              Records {Math.max(1, headSeq - PAGE * (page + 1) + 1)}–{Math.max(0, headSeq - PAGE * page)} of {headSeq} (newest first)
            </caption>
            <thead>
              <tr>
                <th scope="col">Seq</th>
                <th scope="col">Time</th>
                <th scope="col">Kind</th>
                <th scope="col">Who</th>
                <th scope="col">What</th>
                <th scope="col">Outcome</th>
                <th scope="col">Policy</th>
                <th scope="col">Reason</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.seq} class={r.seq === bad ? 'row-bad' : undefined}>
                  <td>{r.seq}</td>
                  <td>{when(r.time)}</td>
                  <td>{r.kind}</td>
                  <td class="wrap">{String(r.fields['actor'] ?? r.fields['node'] ?? r.fields['client'] ?? '')}</td>
                  <td class="wrap">{[r.fields['action'], r.fields['resourcePath']].filter((v) => v !== undefined).join(' ')}</td>
                  <td>{String(r.fields['verdict'] ?? '')}</td>
                  <td>{r.fields['policyId'] !== undefined ? `${String(r.fields['policyId'])}@${String(r.fields['policyVersion'] ?? '?')}` : ''}</td>
                  <td class="wrap">{String(r.fields['reason'] ?? '')}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollBox>
      )}
    </>
  );
}
