import { describe, expect, it } from 'vitest';
import { createMetrics } from './metrics.js';

describe('createMetrics', () => {
  it('renders each metric in Prometheus text format', async () => {
    const m = createMetrics({ processMetrics: false });
    m.observeRequest({ method: 'POST', route: '/kbs/v0/attest', status: 200 }, 0.012);
    m.attestation({ tee: 'tpm', status: 'affirming' });
    m.attestation({ tee: 'tpm', status: 'affirming' });
    m.policyDenial({ kind: 'resource', scope: 'repository' });
    m.release('repo-a');
    m.rateLimitHit('auth');
    const text = await m.render();
    expect(text).toContain('keyhold_kbs_request_duration_seconds_bucket{le="0.025",method="POST",route="/kbs/v0/attest",status="200"} 1');
    expect(text).toContain('keyhold_kbs_attestations_total{tee="tpm",status="affirming"} 2');
    expect(text).toContain('keyhold_kbs_policy_denials_total{kind="resource",scope="repository"} 1');
    expect(text).toContain('keyhold_kbs_releases_total{repository="repo-a"} 1');
    expect(text).toContain('keyhold_kbs_rate_limit_hits_total{scope="auth"} 1');
    expect(m.contentType).toMatch(/^text\/plain/);
  });

  it('keeps registries separate and repository labels bounded', async () => {
    const a = createMetrics({ processMetrics: false, maxRepositoryLabels: 2 });
    const b = createMetrics();
    for (const r of ['r1', 'r2', 'r3', 'r4']) a.release(r);
    const text = await a.render();
    expect(text).toContain('repository="r2"} 1');
    expect(text).toContain('repository="other"} 2');
    expect(text).not.toContain('process_cpu');
    expect(await b.render()).toContain('keyhold_kbs_process_cpu_user_seconds_total');
    expect(await b.render()).not.toContain('repository="r1"');
  });
});
