import { useState } from 'preact/hooks';
import type { AdminApi } from '../api/admin-api.js';
import { Loading, Problem } from '../components/problem.js';
import { useLoad } from '../components/use-load.js';
import { duration, repoPath, when } from '../components/format.js';
import { ScrollBox } from '../components/scroll-box.js';

/** What the admin API says about a resource: metadata only (the console never asks for a value). */
interface ResourceMeta {
  readonly path: string;
  readonly version: number;
  readonly createdAt: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly keepVersions: number;
  readonly generated?: { readonly bytes: number; readonly rotationPeriodMs?: number };
}

async function loadResources(api: AdminApi, repos: readonly string[], signal: AbortSignal): Promise<ResourceMeta[]> {
  if (repos.length === 0) return (await api.get<{ resources: ResourceMeta[] }>('/kbs/v0/resources', signal)).resources;
  const lists = await Promise.all(repos.map((r) => api.get<{ resources: ResourceMeta[] }>(`/kbs/v0/resources/${repoPath(r)}`, signal)));
  return lists.flatMap((l) => l.resources);
}

function nextRotation(r: ResourceMeta): string | undefined {
  const period = r.generated?.rotationPeriodMs;
  if (period === undefined) return undefined;
  return new Date(Date.parse(r.createdAt) + period).toISOString();
}

function Versions({ api, path, onClose }: { api: AdminApi; path: string; onClose: () => void }) {
  const [versions] = useLoad((signal) => api.get<{ path: string; versions: ResourceMeta[] }>(`/kbs/v0/resources/${path.split('/').map(repoPath).join('/')}`, signal), [path]);
  return (
    <section class="panel" aria-labelledby="versions-title">
      <div class="panel-head">
        <h3 id="versions-title">
          Versions of <code>{path}</code>
        </h3>
        <button type="button" class="secondary" onClick={onClose}>
          Close
        </button>
      </div>
      {versions.state === 'loading' && <Loading what="versions" />}
      {versions.state === 'error' && <Problem error={versions.error} what="the versions" />}
      {versions.state === 'ok' && (
        <ul class="versions">
          {[...versions.value.versions].reverse().map((v) => (
            <li key={v.version}>
              version {v.version}, stored {when(v.createdAt)}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Resources: metadata and versions (never values) and each generated key's rotation schedule. */
export function ResourcesView({ api, repositories }: { api: AdminApi; repositories: readonly string[] }) {
  const [repos, setRepos] = useState<readonly string[]>(repositories);
  const [draft, setDraft] = useState(repositories.join(', '));
  const [open, setOpen] = useState<string | undefined>();
  const [resources] = useLoad((signal) => loadResources(api, repos, signal), [repos.join(',')]);
  return (
    <>
      <form
        class="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          setRepos(draft.split(/[\s,]+/).filter((s) => s !== ''));
        }}
      >
        <label for="repo-filter">Repositories</label>
        <input id="repo-filter" type="text" value={draft} onInput={(e) => setDraft((e.currentTarget as HTMLInputElement).value)} placeholder="all (or name some)" />
        <button type="submit" class="secondary">
          Show
        </button>
      </form>
      {resources.state === 'loading' && <Loading what="resources" />}
      {resources.state === 'error' && <Problem error={resources.error} what="the resource list (a repository-limited role must name its repositories)" />}
      {resources.state === 'ok' && (
        <ScrollBox label="Resources">
          <table data-testid="resources-table">
            <caption>
              {resources.value.length} resource{resources.value.length === 1 ? '' : 's'} (metadata only; values are never shown)
            </caption>
            <thead>
              <tr>
                <th scope="col">Path</th>
                <th scope="col">Latest version</th>
                <th scope="col">Stored</th>
                <th scope="col">Versions kept</th>
                <th scope="col">Generated</th>
                <th scope="col">Rotation</th>
                <th scope="col">Next rotation</th>
              </tr>
            </thead>
            <tbody>
              {resources.value.map((r) => (
                <tr key={r.path}>
                  <th scope="row">
                    <button type="button" class="link" onClick={() => setOpen(r.path)} aria-label={`Versions of ${r.path}`}>
                      <code>{r.path}</code>
                    </button>
                  </th>
                  <td>{r.version}</td>
                  <td>{when(r.createdAt)}</td>
                  <td>{r.keepVersions}</td>
                  <td>{r.generated ? `${r.generated.bytes} bytes` : 'uploaded'}</td>
                  <td>{r.generated?.rotationPeriodMs !== undefined ? `every ${duration(r.generated.rotationPeriodMs)}` : '—'}</td>
                  <td>{when(nextRotation(r))}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollBox>
      )}
      {open !== undefined && <Versions api={api} path={open} onClose={() => setOpen(undefined)} />}
    </>
  );
}
