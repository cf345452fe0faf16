import { useState } from 'preact/hooks';
import { importAdminKey } from '../auth/admin-key.js';
import { AdminSession } from '../auth/session.js';

function repositoriesOf(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter((s) => /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(s));
}

/**
 * Sign-in: the owner picks their admin private key (imported into WebCrypto as non-extractable,
 * used to mint 5-minute admin tokens), or pastes an admin token. Nothing is stored anywhere.
 */
export function SignIn({ message, onSession }: { message: string | undefined; onSession: (s: AdminSession) => void }) {
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [role, setRole] = useState('admin');
  const [identity, setIdentity] = useState('');
  const [repos, setRepos] = useState('');
  const [pasted, setPasted] = useState('');
  const [file, setFile] = useState<File | undefined>();

  async function withKey(e: Event) {
    e.preventDefault();
    setError(undefined);
    if (file === undefined) return setError('Choose your admin private key file (PKCS#8 PEM).');
    setBusy(true);
    try {
      const key = await importAdminKey(await file.text());
      const claims = { role: role.trim() || 'admin', ...(identity.trim() !== '' ? { kid: identity.trim() } : {}) };
      const session = AdminSession.withKey(key, claims, repositoriesOf(repos));
      await session.token();
      onSession(session);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  function withToken(e: Event) {
    e.preventDefault();
    setError(undefined);
    try {
      const session = AdminSession.withToken(pasted, repositoriesOf(repos));
      setPasted('');
      onSession(session);
    } catch (err) {
      setError(`That token cannot be used: ${(err as Error).message}`);
    }
  }

  return (
    <main id="main" class="sign-in" tabIndex={-1}>
      <h1>Keyhold console</h1>
      <p class="lede">Sign in with your admin credential. It stays in this page's memory only: closing or reloading the page signs you out.</p>
      {!isSecureContext && (
        <p class="notice notice-error" role="alert">
          This page is not a secure context (serve the KBS over HTTPS, or open it on localhost): the browser withholds WebCrypto, so key sign-in and audit verification cannot work.
        </p>
      )}
      {message !== undefined && (
        <p class="notice notice-forbidden" role="alert" data-testid="signin-message">
          {message}
        </p>
      )}
      {error !== undefined && (
        <p class="notice notice-error" role="alert">
          {error}
        </p>
      )}
      <div class="signin-grid">
        <form onSubmit={withKey} aria-labelledby="with-key">
          <h2 id="with-key">With your admin key</h2>
          <p class="hint">Your Ed25519 or P-256 private key (PKCS#8 PEM). The page cannot read it back: it only signs 5-minute admin tokens, renewed as you go.</p>
          <label for="key-file">Private key file</label>
          <input id="key-file" type="file" accept=".pem,.key,application/x-pem-file" onChange={(e) => setFile((e.currentTarget as HTMLInputElement).files?.[0])} />
          <label for="identity">Identity name (kid)</label>
          <input id="identity" type="text" autocomplete="username" value={identity} onInput={(e) => setIdentity((e.currentTarget as HTMLInputElement).value)} placeholder="as configured on the KBS, e.g. alice" />
          <label for="role">Role</label>
          <input id="role" type="text" value={role} onInput={(e) => setRole((e.currentTarget as HTMLInputElement).value)} required />
          <button type="submit" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in with key'}
          </button>
        </form>
        <form onSubmit={withToken} aria-labelledby="with-token">
          <h2 id="with-token">Or with an admin token</h2>
          <p class="hint">
            A token from <code>keyhold token issue</code>. The session ends when it expires.
          </p>
          <label for="token">Admin token (JWT)</label>
          <textarea id="token" rows={4} spellcheck={false} autocomplete="off" value={pasted} onInput={(e) => setPasted((e.currentTarget as HTMLTextAreaElement).value)} />
          <button type="submit">Sign in with token</button>
        </form>
      </div>
      <div class="repos-field">
        <label for="repos">Your repositories (only for a repository-limited role)</label>
        <input id="repos" type="text" value={repos} onInput={(e) => setRepos((e.currentTarget as HTMLInputElement).value)} placeholder="e.g. team-a, team-a-staging" aria-describedby="repos-hint" />
        <p id="repos-hint" class="hint">
          A limited role cannot list every repository, so the console asks only for the ones named here.
        </p>
      </div>
    </main>
  );
}
