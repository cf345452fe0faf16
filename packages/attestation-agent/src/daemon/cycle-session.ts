/**
 * The daemon's hold on the TPM and the KBS client: opened when a cycle (or a resource request) first
 * needs it, closed when the cycle has ended and no request uses it. Between attestations the TPM is
 * free for other tools (tpm2-tools, a second agent command — a TPM without a resource manager, like
 * swtpm or /dev/tpm0, serves one client at a time), and each cycle starts from a fresh session: a
 * TPM reset or a replaced AK between cycles is picked up, and no transient handle outlives its use.
 *
 * Resources (`run --resource-socket`): while the last attestation's token is fresh and its tee key
 * is a software key, a resource is fetched with that token by a client that has no TPM (the grant
 * client) — one KBS round trip. Without a usable grant (none yet, a TPM-resident tee key, expired,
 * or refused by the KBS) the request opens the session and the session's client attests first.
 */
import { readCaFile } from '@keyhold/command-line';
import type { ResourcePath } from '@keyhold/protocol';
import type { AgentConfig } from '../config.js';
import { KbsClient, type Attester } from '../kbs-client/kbs-client.js';
import type { NodeSession } from '../node-session.js';
import type { DaemonKbs } from './run-daemon.js';

/** Thrown by the grant client's attester: the grant cannot serve this request without attesting. */
class AttestationNeeded extends Error {}

/** The grant client's attester: it never attests (that needs the TPM session). */
export const NO_ATTESTER: Attester = {
  tee: 'tpm',
  requestExtraParams: () => Promise.reject(new AttestationNeeded('attestation needs the TPM session')),
  evidence: () => Promise.reject(new AttestationNeeded('attestation needs the TPM session')),
};

/** The grant client for `config`'s KBS: it fetches with grants it is given and never attests. */
export async function openGrantClient(config: AgentConfig): Promise<KbsClient> {
  const caPem = config.caFile !== undefined ? await readCaFile(config.caFile) : undefined;
  return new KbsClient({ url: config.url, ...(caPem !== undefined ? { caPem } : {}), attester: NO_ATTESTER, timeoutMs: config.timeoutMs });
}

export interface CycleSessionOptions {
  /**
   * A KBS client built with {@link NO_ATTESTER}: it fetches with the last attestation's grant. Without
   * it every resource request opens the TPM session.
   */
  readonly grantClient?: KbsClient;
}

export class CycleSession implements DaemonKbs {
  readonly #open: () => Promise<NodeSession>;
  readonly #grantClient: KbsClient | undefined;
  #session: NodeSession | undefined;
  #opening: Promise<NodeSession> | undefined;
  /** A cycle uses the session (from its first call until release()). */
  #cycle = false;
  /** Resource requests using the session. */
  #users = 0;
  /** Resolved when the last resource request using the session is done. */
  #idle: { promise: Promise<void>; resolve: () => void } | undefined;
  #closing: Promise<void> | undefined;

  constructor(open: () => Promise<NodeSession>, first?: NodeSession, opts: CycleSessionOptions = {}) {
    this.#open = open;
    this.#session = first;
    this.#grantClient = opts.grantClient;
  }

  async #current(): Promise<NodeSession> {
    await this.#closing;
    if (this.#session !== undefined) return this.#session;
    this.#opening ??= this.#open().finally(() => {
      this.#opening = undefined;
    });
    this.#session = await this.#opening;
    return this.#session;
  }

  async attest(): Promise<string> {
    this.#cycle = true;
    return (await this.#current()).client.attest();
  }

  forgetToken(): void {
    this.#session?.client.forgetToken();
    this.#grantClient?.forgetToken();
  }

  async requestNodeCertificate(token: string, csrPem: string): Promise<unknown> {
    this.#cycle = true;
    return (await this.#current()).client.requestNodeCertificate(token, csrPem);
  }

  /**
   * Fetch and decrypt a resource: with the grant when it serves, else through the session (which
   * attests when its client holds no fresh token).
   */
  async getResource(path: ResourcePath, opts: { version?: number } = {}): Promise<Uint8Array> {
    const grant = this.#grantClient;
    if (grant !== undefined && this.#session === undefined && grant.hasFreshToken()) {
      try {
        return await grant.getResource(path, opts);
      } catch (err) {
        // The KBS no longer takes the token (or it is about to expire): attest through the session.
        if (!(err instanceof AttestationNeeded)) throw err;
        grant.forgetToken();
      }
    }
    if (this.#users++ === 0) {
      let resolve!: () => void;
      this.#idle = { promise: new Promise<void>((r) => (resolve = r)), resolve };
    }
    try {
      return await (await this.#current()).client.getResource(path, opts);
    } finally {
      if (--this.#users === 0) {
        this.#idle?.resolve();
        if (!this.#cycle) await this.#close();
      }
    }
  }

  /** The cycle is over: close the session once no resource request uses it. */
  async release(): Promise<void> {
    this.#cycle = false;
    if (this.#users === 0) await this.#close();
  }

  /**
   * The daemon is stopping: wait for the resource requests using the session (abort() has cut their
   * KBS connections), then close it, so that no TPM handle outlives the process.
   */
  async shutdown(): Promise<void> {
    this.#cycle = false;
    while (this.#users > 0) await this.#idle?.promise;
    await this.#close();
    await this.#closing;
  }

  /** Keep the session client's grant for TPM-free fetches, then close the session (flush the TPM's transient handles, drop the KBS connections). */
  async #close(): Promise<void> {
    const s = this.#session;
    this.#session = undefined;
    if (s === undefined) return;
    const grant = s.client.grant();
    if (grant !== undefined) this.#grantClient?.adopt(grant);
    this.#closing = s.close().finally(() => {
      this.#closing = undefined;
    });
    await this.#closing;
  }

  /** Cut the KBS connections in flight (on SIGTERM); the cycle then ends and releases. */
  abort(): void {
    this.#session?.client.close();
    this.#grantClient?.close();
  }
}
