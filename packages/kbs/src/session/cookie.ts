/** Trustee's session cookie name. */
export const SESSION_COOKIE = 'kbs-session-id';
