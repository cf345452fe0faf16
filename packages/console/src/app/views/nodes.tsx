import { useState } from 'preact/hooks';
import type { AdminApi } from '../api/admin-api.js';
import { Loading, Problem } from '../components/problem.js';
import { useLoad } from '../components/use-load.js';
import { short, when } from '../components/format.js';

/** A node record as the contract's `GET /kbs/v0/admin/nodes` returns it (tolerant of older KBSes' enrolment records). */
export interface NodeView {
  readonly nodeId: string;
  readonly state?: string;
  readonly revoked?: boolean;
  readonly ekTrust?: string;
  readonly spiffeId?: string;
  readonly lastAttestedAt?: string;
  readonly enrolledAt?: string;
  readonly lastVerdict?: { readonly status: string; readonly policy?: string; readonly reason?: string; readonly at: string };
  readonly banned?: { readonly at: string; readonly reason: string };
  readonly certificates?: readonly { readonly serial: string; readonly notAfter: string }[];
}

interface HistoryEntry {
  readonly at: string;
  readonly kind: string;
  readonly status?: string;
  readonly policy?: string;
  readonly resource?: string;
  readonly reason?: string;
}

const STATES = ['active', 'stale', 'banned', 'revoked'] as const;

export function stateOf(n: NodeView): string {
  return n.state ?? (n.revoked === true ? 'revoked' : 'enrolled');
}

function certExpiry(n: NodeView): string | undefined {
  const times = (n.certificates ?? []).map((c) => c.notAfter).sort();
  return times.at(-1);
}

function NodeDetail({ api, nodeId, onClose }: { api: AdminApi; nodeId: string; onClose: () => void }) {
  const [detail] = useLoad((signal) => api.get<{ node: NodeView; history: HistoryEntry[] }>(`/kbs/v0/admin/nodes/${encodeURIComponent(nodeId)}`, signal), [nodeId]);
  return (
    <section class="panel" aria-labelledby="node-detail-title">
      <div class="panel-head">
        <h3 id="node-detail-title" tabIndex={-1}>
          Node <code>{short(nodeId, 24)}</code>
        </h3>
        <button type="button" class="secondary" onClick={onClose}>
          Close
        </button>
      </div>
      {detail.state === 'loading' && <Loading what="the node's history" />}
      {detail.state === 'error' && <Problem error={detail.error} what="the attestation history" />}
      {detail.state === 'ok' && (
        <>
          <dl class="facts">
            <dt>State</dt>
            <dd data-testid="node-state">{stateOf(detail.value.node)}</dd>
            {detail.value.node.banned && (
              <>
                <dt>Banned</dt>
                <dd>
                  {when(detail.value.node.banned.at)}: {detail.value.node.banned.reason}
                </dd>
              </>
            )}
            <dt>SPIFFE ID</dt>
            <dd>{detail.value.node.spiffeId ?? '—'}</dd>
          </dl>
          <div class="table-wrap">
            <table>
              <caption>Attestation history (newest first)</caption>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Status</th>
                  <th scope="col">Policy</th>
                  <th scope="col">Resource</th>
                  <th scope="col">Reason</th>
                </tr>
              </thead>
              <tbody>
                {detail.value.history.map((h, i) => (
                  <tr key={i}>
                    <td>{when(h.at)}</td>
                    <td>{h.kind}</td>
                    <td>{h.status !== undefined ? <span class={`badge badge-${h.status}`}>{h.status}</span> : '—'}</td>
                    <td>{h.policy ?? '—'}</td>
                    <td>{h.resource ?? '—'}</td>
                    <td>{h.reason ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}

/** Nodes: state, last verdict and time, first failing reason, EK trust, SPIFFE ID, certificate expiry. */
export function NodesView({ api }: { api: AdminApi }) {
  const [state, setState] = useState('');
  const [selected, setSelected] = useState<string | undefined>();
  const [nodes, reload] = useLoad(
    (signal) => api.get<{ nodes: NodeView[]; next?: string }>(`/kbs/v0/admin/nodes?limit=500${state !== '' ? `&state=${state}` : ''}`, signal),
    [state],
  );
  const rows = nodes.state === 'ok' ? nodes.value.nodes.filter((n) => state === '' || stateOf(n) === state) : [];
  return (
    <>
      <div class="toolbar">
        <label for="node-state-filter">State</label>
        <select id="node-state-filter" value={state} onChange={(e) => setState((e.currentTarget as HTMLSelectElement).value)}>
          <option value="">all</option>
          {STATES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <button type="button" class="secondary" onClick={reload}>
          Refresh
        </button>
      </div>
      {nodes.state === 'loading' && <Loading what="nodes" />}
      {nodes.state === 'error' && <Problem error={nodes.error} what="the node list" />}
      {nodes.state === 'ok' && nodes.value.nodes.some((n) => n.state === undefined) && (
        <p class="notice notice-unavailable" role="status">
          This KBS lists hardware-identity enrolments only, without verdicts: full node records come with continuous attestation.
        </p>
      )}
      {nodes.state === 'ok' && (
        <div class="table-wrap">
          <table data-testid="nodes-table">
            <caption>
              {rows.length === 0 ? 'No nodes recorded' : `${rows.length} node${rows.length === 1 ? '' : 's'}`}
              {state !== '' ? ` in state ${state}` : ''}
            </caption>
            <thead>
              <tr>
                <th scope="col">Node</th>
                <th scope="col">State</th>
                <th scope="col">Last verdict</th>
                <th scope="col">When</th>
                <th scope="col">First failing reason</th>
                <th scope="col">EK trust</th>
                <th scope="col">SPIFFE ID</th>
                <th scope="col">Certificate expiry</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((n) => (
                <tr key={n.nodeId}>
                  <th scope="row">
                    <button type="button" class="link" onClick={() => setSelected(n.nodeId)} aria-label={`Details of node ${n.nodeId}`}>
                      <code>{short(n.nodeId)}</code>
                    </button>
                  </th>
                  <td>
                    <span class={`badge badge-${stateOf(n)}`}>{stateOf(n)}</span>
                  </td>
                  <td>{n.lastVerdict ? `${n.lastVerdict.status}${n.lastVerdict.policy ? ` (${n.lastVerdict.policy})` : ''}` : '—'}</td>
                  <td>{when(n.lastVerdict?.at ?? n.lastAttestedAt ?? n.enrolledAt)}</td>
                  <td>{n.banned?.reason ?? n.lastVerdict?.reason ?? ''}</td>
                  <td>{n.ekTrust ?? '—'}</td>
                  <td class="wrap">{n.spiffeId ?? '—'}</td>
                  <td>{when(certExpiry(n))}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {selected !== undefined && <NodeDetail api={api} nodeId={selected} onClose={() => setSelected(undefined)} />}
    </>
  );
}
