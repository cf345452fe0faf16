/** What the admin API may say about a stored secret: never its value. */
export interface ResourceMetadata {
  readonly path: string;
  readonly version: number;
  readonly createdAt: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly keepVersions: number;
  readonly generated?: { readonly bytes: number; readonly rotationPeriodMs?: number };
}
