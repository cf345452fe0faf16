import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, type AdminApi } from '../api/admin-api.js';
import { decodeUnverifiedJwt } from '../auth/decode-unverified.js';
import { diffLines } from '../policy/line-diff.js';
import { Loading, Problem } from '../components/problem.js';
import { useLoad } from '../components/use-load.js';
import { repoPath, short, when } from '../components/format.js';
import { ScrollBox } from '../components/scroll-box.js';

interface Slot {
  readonly kind: 'attestation' | 'resource';
  /** Attestation policy id. */
  readonly id?: string;
  /** Resource policy repository (absent: the global one). */
  readonly repository?: string;
  readonly label: string;
}

interface PolicyVersion {
  readonly version: number;
  readonly updatedAt: string;
  readonly updatedBy?: string;
  readonly document: unknown;
}

interface StoredPolicyView {
  readonly id: string;
  readonly kind: 'attestation' | 'resource';
  readonly repository?: string;
  readonly scope?: string;
  readonly version: number;
}

const slotKey = (s: Slot): string => `${s.kind}/${s.id ?? s.repository ?? 'global'}`;

/** The slots this owner may see: every stored policy (unlimited roles), else its named repositories'. */
async function loadSlots(api: AdminApi, repositories: readonly string[], signal: AbortSignal): Promise<Slot[]> {
  try {
    const all = await api.get<{ active_attestation_policy: string; policies: StoredPolicyView[] }>('/kbs/v0/policies', signal);
    const slots: Slot[] = all.policies.map((p) =>
      p.kind === 'attestation' ? { kind: 'attestation', id: p.id, label: `attestation: ${p.id}` } : p.repository !== undefined ? { kind: 'resource', repository: p.repository, label: `resource: ${p.repository}` } : { kind: 'resource', label: 'resource: global' },
    );
    if (!slots.some((s) => s.kind === 'attestation' && s.id === all.active_attestation_policy)) slots.unshift({ kind: 'attestation', id: all.active_attestation_policy, label: `attestation: ${all.active_attestation_policy} (built-in)` });
    return slots;
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 403 || repositories.length === 0) throw err;
    return repositories.map((r) => ({ kind: 'resource', repository: r, label: `resource: ${r}` }));
  }
}

async function loadVersions(api: AdminApi, slot: Slot, signal: AbortSignal): Promise<PolicyVersion[]> {
  const contract =
    slot.kind === 'attestation'
      ? `/kbs/v0/policy-versions?kind=attestation&id=${encodeURIComponent(slot.id ?? '')}`
      : `/kbs/v0/policy-versions?kind=resource${slot.repository !== undefined ? `&repository=${encodeURIComponent(slot.repository)}` : ''}`;
  try {
    return (await api.get<{ versions: PolicyVersion[] }>(contract, signal)).versions;
  } catch (err) {
    // A repository-limited owner reads its history on the path that names its repository.
    if (!(err instanceof ApiError) || err.status !== 403 || slot.repository === undefined) throw err;
    return (await api.get<{ versions: PolicyVersion[] }>(`/kbs/v0/resource-policy/${repoPath(slot.repository)}/versions`, signal)).versions;
  }
}

const pretty = (doc: unknown): string => JSON.stringify(doc, null, 2);

function Diff({ before, after }: { before: PolicyVersion; after: PolicyVersion }) {
  const lines = useMemo(() => {
    try {
      return diffLines(pretty(before.document), pretty(after.document));
    } catch (err) {
      return err as Error;
    }
  }, [before, after]);
  if (lines instanceof Error) return <p class="notice notice-error">{lines.message}</p>;
  const changed = lines.filter((l) => l.op !== 'same').length;
  return (
    <figure class="diff">
      <figcaption>
        Changes from version {before.version} to {after.version}: {changed === 0 ? 'none' : `${changed} line${changed === 1 ? '' : 's'}`}
      </figcaption>
      <pre data-testid="policy-diff">
        {lines.map((l, i) => (
          <span key={i} class={`diff-${l.op}`}>
            {l.op === 'add' ? '+ ' : l.op === 'del' ? '- ' : '  '}
            {l.text}
            {'\n'}
          </span>
        ))}
      </pre>
    </figure>
  );
}

interface RecentNode {
  readonly nodeId: string;
  readonly state?: string;
  readonly lastVerdict?: { readonly status: string; readonly at: string };
}

const RECENT_NODES = 25;

/** The nodes that attested most recently, for "test against a node" (none when the role may not list nodes). */
async function recentNodes(api: AdminApi, signal: AbortSignal): Promise<RecentNode[]> {
  try {
    const page = await api.get<{ nodes: RecentNode[] }>('/kbs/v0/admin/nodes?limit=500', signal);
    return page.nodes
      .filter((n) => n.lastVerdict !== undefined)
      .sort((a, b) => (b.lastVerdict?.at ?? '').localeCompare(a.lastVerdict?.at ?? ''))
      .slice(0, RECENT_NODES);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 403 || err.endpointMissing)) return [];
    throw err;
  }
}

function PolicyTest({ api, slot, document, repositories }: { api: AdminApi; slot: Slot | undefined; document: unknown; repositories: readonly string[] }) {
  const [nodes] = useLoad((signal) => (repositories.length > 0 ? Promise.resolve([]) : recentNodes(api, signal)), [repositories.join(',')]);
  const [source, setSource] = useState<'claims' | 'node'>('claims');
  const [nodeId, setNodeId] = useState('');
  const [policy, setPolicy] = useState('');
  const [kind, setKind] = useState<'attestation' | 'resource'>('resource');
  const [claims, setClaims] = useState('{\n  "submods": {"cpu0": {"ear.status": "affirming"}}\n}');
  const [resourcePath, setResourcePath] = useState(slot?.repository !== undefined ? `${slot.repository}/key/example` : 'default/key/example');
  const [token, setToken] = useState('');
  const [result, setResult] = useState<{ ok: true; value: Record<string, unknown> } | { ok: false; error: unknown } | undefined>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (document !== undefined) setPolicy(pretty(document));
    if (slot !== undefined) setKind(slot.kind);
    if (slot?.repository !== undefined) setResourcePath(`${slot.repository}/key/example`);
  }, [document, slot]);

  function useToken() {
    try {
      // Only the decoded claims are used (and sent); the token itself is dropped at once.
      setClaims(pretty(decodeUnverifiedJwt(token).payload));
      setToken('');
      setResult(undefined);
    } catch (err) {
      setResult({ ok: false, error: err });
    }
  }

  async function run(e: Event) {
    e.preventDefault();
    setBusy(true);
    setResult(undefined);
    try {
      const fromNode = source === 'node' && kind === 'resource';
      let parsedClaims: unknown;
      if (!fromNode) {
        try {
          parsedClaims = JSON.parse(claims);
        } catch {
          throw new Error('claims are not valid JSON');
        }
      } else if (nodeId === '') {
        throw new Error('choose a node');
      }
      const trimmed = policy.trim();
      const body = {
        policy: trimmed.startsWith('{') ? (JSON.parse(trimmed) as unknown) : trimmed,
        kind,
        ...(fromNode ? { node: nodeId } : { claims: parsedClaims }),
        ...(kind === 'resource' ? { resourcePath } : {}),
      };
      const repo = resourcePath.split('/')[0] ?? '';
      let value: Record<string, unknown>;
      try {
        value = await api.post('/kbs/v0/policy-test', body);
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 403 || kind !== 'resource') throw err;
        value = await api.post(`/kbs/v0/resource-policy/${repoPath(repo)}/test`, body);
      }
      setResult({ ok: true, value });
    } catch (err) {
      setResult({ ok: false, error: err });
    } finally {
      setBusy(false);
    }
  }

  const verdict = result?.ok === true ? (result.value['kind'] === 'resource' ? (result.value['allow'] === true ? 'allow' : 'deny') : String(result.value['status'])) : undefined;
  return (
    <section class="panel" aria-labelledby="policy-test-title">
      <h3 id="policy-test-title">Test a policy</h3>
      <p class="hint">Runs on the KBS with its own compiler and cost limits; nothing is stored.</p>
      <form onSubmit={run} class="test-form">
        <label for="test-kind">Kind</label>
        <select id="test-kind" value={kind} onChange={(e) => setKind((e.currentTarget as HTMLSelectElement).value as 'attestation' | 'resource')}>
          <option value="resource">resource (release decision)</option>
          <option value="attestation">attestation (verdict)</option>
        </select>
        <label for="test-policy">Policy (JSON document, or a bare CEL rule for a resource policy)</label>
        <textarea id="test-policy" rows={8} spellcheck={false} value={policy} onInput={(e) => setPolicy((e.currentTarget as HTMLTextAreaElement).value)} />
        {kind === 'resource' && nodes.state === 'ok' && nodes.value.length > 0 && (
          <fieldset class="choice">
            <legend>Claims from</legend>
            <label>
              <input type="radio" name="test-source" value="claims" checked={source === 'claims'} onChange={() => setSource('claims')} /> claims I give
            </label>
            <label>
              <input type="radio" name="test-source" value="node" checked={source === 'node'} onChange={() => setSource('node')} /> a recent node's last verdict
            </label>
          </fieldset>
        )}
        {kind === 'resource' && source === 'node' && nodes.state === 'ok' && nodes.value.length > 0 ? (
          <>
            <label for="test-node">Node (most recent verdicts first)</label>
            <select id="test-node" value={nodeId} onChange={(e) => setNodeId((e.currentTarget as HTMLSelectElement).value)}>
              <option value="">choose a node…</option>
              {nodes.value.map((n) => (
                <option key={n.nodeId} value={n.nodeId}>
                  {short(n.nodeId, 20)} — {n.lastVerdict?.status} at {when(n.lastVerdict?.at)}
                  {n.state !== undefined && n.state !== 'active' ? ` (${n.state})` : ''}
                </option>
              ))}
            </select>
            <p class="hint">The KBS rebuilds the claims from the node's record: its last verdict's status, its node id and its freshness (state, seconds since its last attestation). It keeps no evidence or tokens per node, so rules on PCRs or other evidence need pasted claims.</p>
          </>
        ) : (
          <>
            <label for="test-claims">Claims (JSON: a token's claims, or the verifier's claims for an attestation policy)</label>
            <textarea id="test-claims" rows={6} spellcheck={false} value={claims} onInput={(e) => setClaims((e.currentTarget as HTMLTextAreaElement).value)} />
            <div class="inline">
              <label for="test-token">…or take them from a recent attestation token</label>
              <input id="test-token" type="text" autocomplete="off" spellcheck={false} value={token} onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)} placeholder="paste an EAR token: its claims are decoded here" />
              <button type="button" class="secondary" onClick={useToken} disabled={token.trim() === ''}>
                Use its claims
              </button>
            </div>
          </>
        )}
        {kind === 'resource' && (
          <>
            <label for="test-path">Resource path</label>
            <input id="test-path" type="text" value={resourcePath} onInput={(e) => setResourcePath((e.currentTarget as HTMLInputElement).value)} />
          </>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Testing…' : 'Run test'}
        </button>
      </form>
      <div role="status" aria-live="polite" data-testid="policy-test-result">
        {result?.ok === true && (
          <div class={`result result-${verdict}`}>
            <p>
              <strong>{verdict}</strong>
              {typeof result.value['reason'] === 'string' ? `: ${result.value['reason']}` : ''}
            </p>
            {result.value['vector'] !== undefined && <pre>{pretty(result.value['vector'])}</pre>}
            {typeof result.value['fromNode'] === 'object' && result.value['fromNode'] !== null && (
              <p class="hint" data-testid="policy-test-node">
                {String((result.value['fromNode'] as Record<string, unknown>)['note'])}; node state {String((result.value['fromNode'] as Record<string, unknown>)['state'])}.
              </p>
            )}
          </div>
        )}
        {result?.ok === false && <Problem error={result.error} what="the test" />}
      </div>
    </section>
  );
}

/** Policies: stored slots, each slot's versions, a diff between two versions, and a test box. */
export function PoliciesView({ api, repositories }: { api: AdminApi; repositories: readonly string[] }) {
  const [slots] = useLoad((signal) => loadSlots(api, repositories, signal), [repositories.join(',')]);
  const [selected, setSelected] = useState<Slot | undefined>();
  const [versions] = useLoad(async (signal) => (selected === undefined ? [] : loadVersions(api, selected, signal)), [selected === undefined ? '' : slotKey(selected)]);
  const [fromV, setFromV] = useState<number | undefined>();
  const [toV, setToV] = useState<number | undefined>();
  const list = versions.state === 'ok' ? versions.value : [];
  useEffect(() => {
    setToV(list[0]?.version);
    setFromV(list[1]?.version ?? list[0]?.version);
  }, [versions]);
  const before = list.find((v) => v.version === fromV);
  const after = list.find((v) => v.version === toV);

  return (
    <>
      {slots.state === 'loading' && <Loading what="policies" />}
      {slots.state === 'error' && <Problem error={slots.error} what="the policy list (name your repositories at sign-in if your role is limited)" />}
      {slots.state === 'ok' && (
        <div class="split">
          <nav aria-label="Policies" class="slot-list">
            <h3>Policy slots</h3>
            {slots.value.length === 0 && <p>No policies are stored: the built-in defaults apply.</p>}
            <ul>
              {slots.value.map((s) => (
                <li key={slotKey(s)}>
                  <button type="button" class={selected && slotKey(selected) === slotKey(s) ? 'slot selected' : 'slot'} aria-pressed={selected !== undefined && slotKey(selected) === slotKey(s)} onClick={() => setSelected(s)}>
                    {s.label}
                  </button>
                </li>
              ))}
            </ul>
          </nav>
          <div class="slot-detail">
            {selected === undefined && <p>Choose a policy to see its versions.</p>}
            {selected !== undefined && versions.state === 'loading' && <Loading what="versions" />}
            {selected !== undefined && versions.state === 'error' && <Problem error={versions.error} what="the policy's versions" />}
            {selected !== undefined && versions.state === 'ok' && (
              <>
                <ScrollBox label="Policy versions">
                  <table data-testid="versions-table">
                    <caption>
                      Versions of {selected.label} (newest first{list.length === 0 ? '; none stored: the built-in policy applies' : ''})
                    </caption>
                    <thead>
                      <tr>
                        <th scope="col">Version</th>
                        <th scope="col">Stored</th>
                        <th scope="col">By</th>
                      </tr>
                    </thead>
                    <tbody>
                      {list.map((v) => (
                        <tr key={v.version}>
                          <td>{v.version}</td>
                          <td>{when(v.updatedAt)}</td>
                          <td>{v.updatedBy ?? '—'}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </ScrollBox>
                {list.length > 0 && (
                  <div class="toolbar">
                    <label for="diff-from">Compare version</label>
                    <select id="diff-from" value={fromV} onChange={(e) => setFromV(Number((e.currentTarget as HTMLSelectElement).value))}>
                      {list.map((v) => (
                        <option key={v.version} value={v.version}>
                          {v.version}
                        </option>
                      ))}
                    </select>
                    <label for="diff-to">with version</label>
                    <select id="diff-to" value={toV} onChange={(e) => setToV(Number((e.currentTarget as HTMLSelectElement).value))}>
                      {list.map((v) => (
                        <option key={v.version} value={v.version}>
                          {v.version}
                        </option>
                      ))}
                    </select>
                  </div>
                )}
                {before !== undefined && after !== undefined && <Diff before={before} after={after} />}
              </>
            )}
          </div>
        </div>
      )}
      <PolicyTest api={api} slot={selected} document={after?.document} repositories={repositories} />
    </>
  );
}
