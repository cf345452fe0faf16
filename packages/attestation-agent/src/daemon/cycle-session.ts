/**
 * The daemon's hold on the TPM and the KBS client: opened when a cycle first needs it, closed at the
 * end of every cycle. Between attestations the TPM is free for other tools (tpm2-tools, a second
 * agent command — a TPM without a resource manager, like swtpm or /dev/tpm0, serves one client at
 * a time), and each cycle starts from a fresh session: a TPM reset or a replaced AK between cycles
 * is picked up, and no transient handle outlives its cycle.
 */
import type { NodeSession } from '../node-session.js';
import type { DaemonKbs } from './run-daemon.js';

export class CycleSession implements DaemonKbs {
  readonly #open: () => Promise<NodeSession>;
  #session: NodeSession | undefined;
  #opening: Promise<NodeSession> | undefined;

  constructor(open: () => Promise<NodeSession>, first?: NodeSession) {
    this.#open = open;
    this.#session = first;
  }

  async #current(): Promise<NodeSession> {
    if (this.#session !== undefined) return this.#session;
    this.#opening ??= this.#open().finally(() => {
      this.#opening = undefined;
    });
    this.#session = await this.#opening;
    return this.#session;
  }

  async attest(): Promise<string> {
    return (await this.#current()).client.attest();
  }

  forgetToken(): void {
    this.#session?.client.forgetToken();
  }

  async requestNodeCertificate(token: string, csrPem: string): Promise<unknown> {
    return (await this.#current()).client.requestNodeCertificate(token, csrPem);
  }

  /** Close the session (flush the TPM's transient handles, drop the KBS connections). */
  async release(): Promise<void> {
    const s = this.#session;
    this.#session = undefined;
    await s?.close();
  }

  /** Cut the KBS connections of a cycle in flight (on SIGTERM); the cycle then ends and releases. */
  abort(): void {
    this.#session?.client.close();
  }
}
