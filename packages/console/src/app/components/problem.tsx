import { ApiError } from '../api/admin-api.js';

/** How a view says it cannot show something: endpoint absent on this KBS, role refused, or an error. */
export function Problem({ error, what }: { error: unknown; what: string }) {
  if (error instanceof ApiError && error.endpointMissing) {
    return (
      <p class="notice notice-unavailable" role="status">
        <strong>Not available on this KBS:</strong> {what} needs an endpoint this KBS does not have yet ({error.detail}).
      </p>
    );
  }
  if (error instanceof ApiError && error.status === 403) {
    return (
      <p class="notice notice-forbidden" role="status">
        <strong>Not permitted for your role:</strong> {what} ({error.detail}).
      </p>
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return (
    <p class="notice notice-error" role="alert">
      <strong>Could not load {what}:</strong> {message}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="loading" role="status">
      Loading {what}…
    </p>
  );
}
