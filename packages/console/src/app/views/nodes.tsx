import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type AdminApi } from '../api/admin-api.js';
import { Loading, Problem } from '../components/problem.js';
import { useLoad } from '../components/use-load.js';
import { short, when } from '../components/format.js';
import { ScrollBox } from '../components/scroll-box.js';

/** A node record as `GET /kbs/v0/admin/nodes` returns it (tolerant of older KBSes' enrolment records). */
export interface NodeView {
  readonly nodeId: string;
  readonly state?: string;
  readonly revoked?: boolean;
  readonly ekHash?: string;
  readonly ekTrust?: string;
  readonly spiffeId?: string;
  readonly firstSeenAt?: string;
  readonly lastSeenAt?: string;
  readonly lastAttestedAt?: string;
  readonly enrolledAt?: string;
  readonly lastVerdict?: { readonly status: string; readonly policy?: string; readonly reason?: string; readonly at: string };
  readonly banned?: { readonly at: string; readonly reason: string };
  readonly revokedAt?: string;
  readonly certificates?: readonly { readonly serial: string; readonly notAfter: string }[];
}

/** What the caller's role may do to nodes, when the KBS says so (advisory: the POST decides). */
interface NodeActions {
  readonly unban?: boolean;
}

interface NodePage {
  readonly nodes: NodeView[];
  readonly next?: string;
  readonly may?: NodeActions;
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
const PAGE = 200;

export function stateOf(n: NodeView): string {
  return n.state ?? (n.revoked === true ? 'revoked' : 'enrolled');
}

/** The first failing reason: the ban's, else a failed last verdict's. */
function failingReason(n: NodeView): string {
  if (n.banned !== undefined) return n.banned.reason;
  const v = n.lastVerdict;
  return v !== undefined && v.status !== 'affirming' ? (v.reason ?? '') : '';
}

function certExpiry(n: NodeView): string | undefined {
  return (n.certificates ?? []).map((c) => c.notAfter).sort().at(-1);
}

/** A node's admin path; the `:` of `ak:<hex>` ids is a plain path character and goes as is. */
export const nodePath = (nodeId: string): string => `/kbs/v0/admin/nodes/${encodeURIComponent(nodeId).replace(/%3A/g, ':')}`;

/**
 * Confirm an unban in a modal dialog (keyboard: focus starts on Cancel, Escape cancels). The KBS
 * checks the role and records the unban in its audit trail; a refusal is shown here.
 */
function UnbanDialog({ api, node, onDone, onCancel }: { api: AdminApi; node: NodeView; onDone: (n: NodeView) => void; onCancel: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    const d = ref.current;
    if (d !== null && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  async function confirm() {
    setBusy(true);
    setError(undefined);
    try {
      const answer = await api.post<NodeView | { node: NodeView }>(`${nodePath(node.nodeId)}/unban`, {});
      onDone('node' in answer ? answer.node : answer);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="unban-title" aria-describedby="unban-what" onCancel={(e) => (e.preventDefault(), onCancel())}>
      <h3 id="unban-title">Unban this node?</h3>
      <p id="unban-what">
        Node <code>{short(node.nodeId, 24)}</code> was banned {when(node.banned?.at)}
        {node.banned?.reason !== undefined ? `: ${node.banned.reason}` : ''}. After an unban it may attest again and, if its appraisal passes, receive secrets. The KBS records
        who unbanned it in the audit trail.
      </p>
      {error !== undefined && <Problem error={error} what="the unban" />}
      <div class="dialog-actions">
        <button type="button" class="secondary" onClick={onCancel} autofocus>
          Cancel
        </button>
        <button type="button" class="danger" onClick={() => void confirm()} disabled={busy}>
          {busy ? 'Unbanning…' : 'Unban node'}
        </button>
      </div>
    </dialog>
  );
}

function NodeDetail({ api, nodeId, may, onClose, onChanged }: { api: AdminApi; nodeId: string; may: NodeActions | undefined; onClose: () => void; onChanged: () => void }) {
  const [detail, reload] = useLoad((signal) => api.get<{ node: NodeView; history: HistoryEntry[]; may?: NodeActions }>(nodePath(nodeId), signal), [nodeId]);
  const [confirming, setConfirming] = useState(false);
  const [notice, setNotice] = useState<string | undefined>();
  const title = useRef<HTMLHeadingElement>(null);
  useEffect(() => title.current?.focus(), [nodeId]);
  const node = detail.state === 'ok' ? detail.value.node : undefined;
  const canUnban = (detail.state === 'ok' ? detail.value.may?.unban : undefined) ?? may?.unban ?? true;
  return (
    <section class="panel" aria-labelledby="node-detail-title" data-testid="node-detail">
      <div class="panel-head">
        <h3 id="node-detail-title" tabIndex={-1} ref={title}>
          Node <code>{short(nodeId, 24)}</code>
        </h3>
        <button type="button" class="secondary" onClick={onClose}>
          Close
        </button>
      </div>
      {notice !== undefined && (
        <p class="notice notice-ok" role="status">
          {notice}
        </p>
      )}
      {detail.state === 'loading' && <Loading what="the node's history" />}
      {detail.state === 'error' && <Problem error={detail.error} what="the node's record and attestation history" />}
      {node !== undefined && detail.state === 'ok' && (
        <>
          <dl class="facts">
            <dt>Node id</dt>
            <dd>
              <code>{node.nodeId}</code>
            </dd>
            <dt>State</dt>
            <dd data-testid="node-state">{stateOf(node)}</dd>
            {node.banned && (
              <>
                <dt>Banned</dt>
                <dd data-testid="node-banned">
                  {when(node.banned.at)}: {node.banned.reason}
                </dd>
              </>
            )}
            {node.revokedAt !== undefined && (
              <>
                <dt>Revoked</dt>
                <dd>{when(node.revokedAt)}</dd>
              </>
            )}
            <dt>Last verdict</dt>
            <dd>{node.lastVerdict ? `${node.lastVerdict.status}${node.lastVerdict.policy ? ` by ${node.lastVerdict.policy}` : ''} at ${when(node.lastVerdict.at)}${node.lastVerdict.reason ? `: ${node.lastVerdict.reason}` : ''}` : '—'}</dd>
            <dt>Last successful attestation</dt>
            <dd>{when(node.lastAttestedAt)}</dd>
            <dt>First seen</dt>
            <dd>{when(node.firstSeenAt ?? node.enrolledAt)}</dd>
            <dt>EK</dt>
            <dd>{node.ekHash !== undefined ? `${short(node.ekHash, 24)} (trust: ${node.ekTrust ?? 'none'})` : 'not known (AK trusted directly)'}</dd>
            <dt>SPIFFE ID</dt>
            <dd>{node.spiffeId ?? '—'}</dd>
            <dt>Certificates</dt>
            <dd>{(node.certificates ?? []).length === 0 ? '—' : (node.certificates ?? []).map((c) => `${short(c.serial, 16)} until ${when(c.notAfter)}`).join('; ')}</dd>
          </dl>
          {stateOf(node) === 'banned' && canUnban && (
            <button type="button" class="danger spaced" onClick={() => setConfirming(true)}>
              Unban…
            </button>
          )}
          <ScrollBox label="Attestation history">
            <table data-testid="node-history">
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
                    <td class="wrap">{h.reason ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </ScrollBox>
          {confirming && (
            <UnbanDialog
              api={api}
              node={node}
              onCancel={() => setConfirming(false)}
              onDone={(n) => {
                setConfirming(false);
                setNotice(`Node unbanned; its state is now ${stateOf(n)}.`);
                reload();
                onChanged();
              }}
            />
          )}
        </>
      )}
    </section>
  );
}

/** Nodes: state, last verdict and time, first failing reason, EK trust, SPIFFE ID, certificate expiry; a node's record and history. */
export function NodesView({ api }: { api: AdminApi }) {
  const [state, setState] = useState('');
  const [selected, setSelected] = useState<string | undefined>();
  const [more, setMore] = useState<{ nodes: NodeView[]; next?: string } | undefined>();
  const [moreError, setMoreError] = useState<unknown>();
  const [nodes, reload] = useLoad((signal) => api.get<NodePage>(`/kbs/v0/admin/nodes?limit=${PAGE}${state !== '' ? `&state=${state}` : ''}`, signal), [state]);
  useEffect(() => setMore(undefined), [nodes]);
  const first = nodes.state === 'ok' ? nodes.value : undefined;
  const all = [...(first?.nodes ?? []), ...(more?.nodes ?? [])];
  const next = more !== undefined ? more.next : first?.next;
  const rows = all.filter((n) => state === '' || stateOf(n) === state);

  async function loadMore() {
    if (next === undefined) return;
    setMoreError(undefined);
    try {
      const page = await api.get<NodePage>(`/kbs/v0/admin/nodes?limit=${PAGE}&after=${encodeURIComponent(next)}${state !== '' ? `&state=${state}` : ''}`);
      setMore((m) => ({ nodes: [...(m?.nodes ?? []), ...page.nodes], ...(page.next !== undefined ? { next: page.next } : {}) }));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      setMoreError(err);
    }
  }

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
      {first !== undefined && first.nodes.some((n) => n.state === undefined) && (
        <p class="notice notice-unavailable" role="status">
          This KBS lists hardware-identity enrolments only, without verdicts: full node records come with continuous attestation.
        </p>
      )}
      {first !== undefined && (
        <ScrollBox label="Nodes">
          <table data-testid="nodes-table">
            <caption>
              {rows.length === 0 ? 'No nodes recorded' : `${rows.length} node${rows.length === 1 ? '' : 's'}`}
              {state !== '' ? ` in state ${state}` : ''}
              {next !== undefined ? ' (more available)' : ''}
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
                    <button type="button" class="link" onClick={() => setSelected(n.nodeId)} aria-label={`${short(n.nodeId)}: details of node ${n.nodeId}`}>
                      <code>{short(n.nodeId)}</code>
                    </button>
                  </th>
                  <td>
                    <span class={`badge badge-${stateOf(n)}`}>{stateOf(n)}</span>
                  </td>
                  <td>{n.lastVerdict ? `${n.lastVerdict.status}${n.lastVerdict.policy ? ` (${n.lastVerdict.policy})` : ''}` : '—'}</td>
                  <td>{when(n.lastVerdict?.at ?? n.lastAttestedAt ?? n.enrolledAt)}</td>
                  <td class="wrap">{failingReason(n)}</td>
                  <td>{n.ekTrust ?? '—'}</td>
                  <td>{n.spiffeId !== undefined ? <span title={n.spiffeId}>{short(n.spiffeId, 44)}</span> : '—'}</td>
                  <td>{when(certExpiry(n))}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollBox>
      )}
      {next !== undefined && (
        <button type="button" class="secondary" onClick={() => void loadMore()}>
          More nodes
        </button>
      )}
      {moreError !== undefined && <Problem error={moreError} what="more nodes" />}
      {selected !== undefined && <NodeDetail api={api} nodeId={selected} may={first?.may} onClose={() => setSelected(undefined)} onChanged={reload} />}
    </>
  );
}
