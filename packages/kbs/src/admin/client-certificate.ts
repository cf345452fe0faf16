import { TLSSocket } from 'node:tls';
import type { Context } from 'hono';
import { KbsError } from '../errors.js';

/** What the admin trail may record of a verified client certificate (never the certificate itself). */
export interface AdminClientCertificate {
  readonly subject: string;
  readonly fingerprint256: string;
}

/**
 * Mutual TLS for the admin API (`[admin] client_ca`): the request must have come over a TLS
 * connection whose client certificate verified against the configured client CA (node's
 * `socket.authorized`, set by the TLS handshake with `requestCert` against that CA). The admin
 * token is still required on top. Without a node socket (in-process `app.request()`) there is no
 * certificate, so the call is refused (fail closed).
 */
export function requireVerifiedClientCertificate(c: Context): AdminClientCertificate {
  const socket = (c.env as { incoming?: { socket?: unknown } } | undefined)?.incoming?.socket;
  // SECURITY: with client_ca configured, a valid admin token alone is not enough: a stolen token is
  // useless without the operator's client key too (mutual TLS, RFC 8446 §4.3.2 / §4.4.2).
  if (!(socket instanceof TLSSocket) || !socket.authorized) {
    const why = !(socket instanceof TLSSocket) ? 'no TLS connection' : socket.getPeerCertificate().raw === undefined ? 'no client certificate was sent' : `the client certificate was refused (${String(socket.authorizationError)})`;
    throw new KbsError('ADMIN_UNAUTHORIZED', `admin endpoints need a client certificate issued by this KBS's [admin] client_ca (mutual TLS): ${why}`);
  }
  const peer = socket.getPeerCertificate();
  return { subject: typeof peer.subject?.CN === 'string' ? peer.subject.CN.slice(0, 256) : '', fingerprint256: peer.fingerprint256 ?? '' };
}
