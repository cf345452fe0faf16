/**
 * The flags every `keyhold-agent` command shares, in one table: commander reads them before or
 * after the command word (`keyhold-agent --url U token` = `keyhold-agent token --url U`), and
 * {@link commonValues} hands them to `agentConfigFrom` under their flag names. To add a flag: add
 * a row here and read it in config.ts. No imports: the full CLI (cli-options.ts, commander) and the
 * cold fast path of `get-resource` (cold-start/cold-args.ts, no parser library) read this one table.
 */
export const AGENT_OPTIONS = [
  { flags: '--url <url>', help: 'KBS base URL (default http://127.0.0.1:8080; env KEYHOLD_KBS_URL)' },
  { flags: '--cert-file <file>', help: 'CA certificate (PEM) of an https KBS, as kbs-client (env KEYHOLD_KBS_CA)' },
  { flags: '-T, --tcti <tcti>', help: 'TPM access, as tpm2-tools: device:/dev/tpmrm0 (default), swtpm:host=H,port=P, mssim:... (env KEYHOLD_TCTI, TPM2TOOLS_TCTI, TCTI)' },
  { flags: '--ak-mode <mode>', help: 'persistent (default): AK at --ak-handle; stored: AK created under the EK, kept in --state-dir' },
  { flags: '--ak-handle <handle>', help: 'persistent AK handle (default 0x81010002)' },
  { flags: '--no-ak-create', help: 'fail instead of creating an AK when none exists' },
  { flags: '--ak-alg <alg>', help: 'rsa (default: RSASSA-SHA256) or ecc: algorithm of an AK the agent creates' },
  { flags: '--state-dir <dir>', help: 'agent state (default ~/.local/state/keyhold-agent; env KEYHOLD_AGENT_STATE_DIR)' },
  { flags: '--init-data <file>', help: 'init-data TOML: extended into PCR8 once per TPM reset and sent to the KBS' },
  { flags: '--tee-key <type>', help: 'key the secret is wrapped to: ec (default, ephemeral ECDH-ES+A256KW), rsa (ephemeral RSA-OAEP-256), tpm-rsa or tpm-ecc (created in the TPM, certified by the AK)' },
  { flags: '--seal-to-pcrs <pcrs>', help: 'tpm-* tee keys: usable only while these SHA-256 PCRs (all, or e.g. 0,2,4,7) keep their current values' },
  { flags: '--cache-dir <dir>', help: 'tpm-* tee keys: keep released JWEs here and open them without the KBS while they still decrypt' },
  { flags: '--tee <type>', help: 'evidence type: tpm (default), az-snp-vtpm, az-tdx-vtpm, or auto (an HCL report in NV 0x01400001 means Azure)' },
  { flags: '--vcek-file <file>', help: 'az-snp-vtpm: the VCEK (PEM/DER) instead of asking Azure IMDS' },
  { flags: '--timeout-ms <n>', help: 'per-request timeout (default 30000)' },
  { flags: '--event-log <file>', help: 'TCG event log sent as evidence (default: the kernel\'s, when readable and the TPM is not swtpm/mssim)' },
  { flags: '--no-event-log', help: 'send no event log' },
  { flags: '--ima-log <file>', help: 'IMA ascii_runtime_measurements sent as evidence (same default rule)' },
  { flags: '--no-ima-log', help: 'send no IMA log' },
  { flags: '--ek-alg <alg>', help: 'EK named to the KBS: rsa (default, TCG L-1), ecc (L-2 P-256) or ecc384 (high-range H-3 P-384)' },
  { flags: '--no-ek-identity', help: 'do not name the EK/AK to the KBS (no credential activation; Trustee\'s trusted_ak only)' },
  { flags: '--json', help: 'machine-readable output on stdout (and errors as JSON on stderr)' },
] as const satisfies readonly { flags: string; help: string }[];

/** A flag's long name without dashes: `tcti`, `no-ak-create`, `event-log`. */
type LongName<F extends string> = F extends `${string}--${infer N} <${string}>` ? N : F extends `${string}--${infer N}` ? N : never;
type Row = (typeof AGENT_OPTIONS)[number];

/** The shared flags as parsed, keyed by flag name (`'no-event-log': true`, `tcti: 'swtpm:...'`). */
export type CommonValues = { [R in Row as LongName<R['flags']>]?: R['flags'] extends `${string}<${string}>` ? string : boolean };
