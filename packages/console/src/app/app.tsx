import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { AdminApi } from './api/admin-api.js';
import type { AdminSession } from './auth/session.js';
import { AuditView } from './views/audit.js';
import { DecisionsView } from './views/decisions.js';
import { HealthView } from './views/health.js';
import { NodesView } from './views/nodes.js';
import { PoliciesView } from './views/policies.js';
import { ResourcesView } from './views/resources.js';
import { SignIn } from './views/sign-in.js';

const VIEWS = [
  { id: 'nodes', title: 'Nodes' },
  { id: 'decisions', title: 'Decisions' },
  { id: 'policies', title: 'Policies' },
  { id: 'resources', title: 'Resources' },
  { id: 'audit', title: 'Audit' },
  { id: 'health', title: 'Health' },
] as const;
type ViewId = (typeof VIEWS)[number]['id'];

function viewFromHash(fallback: ViewId): ViewId {
  const id = location.hash.replace(/^#\/?/, '');
  return (VIEWS.find((v) => v.id === id)?.id ?? fallback) as ViewId;
}

function Console({ session, signOut }: { session: AdminSession; signOut: (message?: string) => void }) {
  const fallback: ViewId = session.repositories.length > 0 ? 'resources' : 'nodes';
  const [view, setView] = useState<ViewId>(() => viewFromHash(fallback));
  const heading = useRef<HTMLHeadingElement>(null);
  const api = useMemo(() => new AdminApi(session, (detail) => signOut(`Signed out: ${detail} Sign in again.`)), [session, signOut]);
  useEffect(() => {
    const onHash = () => setView(viewFromHash(fallback));
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, [fallback]);
  useEffect(() => {
    // A pasted token cannot be renewed: return to sign-in when it expires.
    const ms = session.msUntilExpiry();
    if (!Number.isFinite(ms)) return;
    const t = setTimeout(() => signOut('Your admin token expired. Sign in again.'), Math.max(0, ms));
    return () => clearTimeout(t);
  }, [session, signOut]);
  const go = (id: ViewId) => {
    if (id === view) return;
    history.replaceState(null, '', `#/${id}`);
    setView(id);
    // Move focus to the new view's heading so keyboard and screen-reader users land there.
    requestAnimationFrame(() => heading.current?.focus());
  };
  const title = VIEWS.find((v) => v.id === view)?.title ?? '';
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Keyhold console</span>
        <nav aria-label="Views">
          <ul>
            {VIEWS.map((v) => (
              <li key={v.id}>
                <a href={`#/${v.id}`} aria-current={v.id === view ? 'page' : undefined} onClick={(e) => (e.preventDefault(), go(v.id))}>
                  {v.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span data-testid="who">
            {session.identity ?? 'token'} · {session.role ?? 'role from token'}
            {session.repositories.length > 0 ? ` · ${session.repositories.join(', ')}` : ''}
          </span>
          <button type="button" class="secondary" onClick={() => signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <h2 ref={heading} tabIndex={-1} data-testid="view-title">
          {title}
        </h2>
        {view === 'nodes' && <NodesView api={api} />}
        {view === 'decisions' && <DecisionsView api={api} repositories={session.repositories} />}
        {view === 'policies' && <PoliciesView api={api} repositories={session.repositories} />}
        {view === 'resources' && <ResourcesView api={api} repositories={session.repositories} />}
        {view === 'audit' && <AuditView api={api} />}
        {view === 'health' && <HealthView api={api} />}
      </main>
    </>
  );
}

/** The console: sign-in, then the views. The session lives only in this component's memory. */
export function App() {
  const [session, setSession] = useState<AdminSession | undefined>();
  const [message, setMessage] = useState<string | undefined>();
  const signOut = useCallback((why?: string) => {
    setSession((s) => {
      s?.clear();
      return undefined;
    });
    setMessage(why);
  }, []);
  if (session === undefined) {
    return (
      <SignIn
        message={message}
        onSession={(s) => {
          setMessage(undefined);
          setSession(s);
        }}
      />
    );
  }
  return <Console session={session} signOut={signOut} />;
}
