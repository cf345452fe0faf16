import { UsageError, type Command, type ProgramContext } from '@keyhold/command-line';
import type { KeyholdRun } from './keyhold-run.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** Global flags a pass-through command still needs to see (commander takes them off its arguments). */
function passThroughGlobals(run: KeyholdRun): string[] {
  return run.json ? ['--json'] : [];
}

/** Commands that work without a KBS admin token: tokens, policies, TPM tools, images, node-side verbs. */
export function defineLocalCommands(program: Command, ctx: ProgramContext, run: KeyholdRun): void {
  const token = program.command('token').description('admin tokens');
  token
    .command('issue')
    .description('mint an admin token (JWT) from an Ed25519 (EdDSA) or EC P-256 (ES256) PRIVATE key; prints it on stdout')
    .requiredOption('--key <file>', 'the PRIVATE key (PEM); the KBS holds the public half')
    .requiredOption('--role <role>', 'role claim, e.g. admin, auditor, reader')
    .option('--lifetime <duration>', 'e.g. 90s, 15m, 1h, 7d (at most 30d)', '1h')
    .option('--iss <iss>', 'issuer claim')
    .option('--aud <aud>', 'audience claim')
    .option('--sub <sub>', 'subject claim')
    .option('--kid <name>', 'identity name configured on the KBS')
    .action(ctx.action(async (o: { key: string; role: string; lifetime: string; iss?: string; aud?: string; sub?: string; kid?: string }) => (await import('./commands/token-issue.js')).issueToken(o, run)));

  const policy = program.command('policy').description('CEL policies and reference states, locally');
  policy
    .command('test')
    .description('evaluate a CEL policy locally (exit 0 allow/affirming, 1 deny/not affirming, 2 error)')
    .requiredOption('--policy <file>', 'policy document (JSON) or a bare CEL rule (a resource policy, as the KBS takes it)')
    .option('--kind <kind>', 'resource or attestation, for a document without "kind"')
    .option('--token <file>', 'resource policy input: a saved attestation token (signature NOT checked)')
    .option('--claims <file>', 'the claims as JSON (token claims, or the verifier claims for an attestation policy)')
    .option('--resource-path <path>', 'resource policy: REPO/TYPE/TAG')
    .option('--query <k=v>', 'resource policy: a query parameter; repeatable', collect)
    .option('--reference <file>', 'attestation policy: reference values, JSON {"name": [values]}')
    .option('--tee <tee>', 'attestation policy: the TEE (default tpm)')
    .action(ctx.action(async (o: Record<string, unknown>) => (await import('./commands/policy-test.js')).testPolicy(o, run)));

  const create = policy.command('create').description('generate a measured-boot reference state or a Keylime runtime policy');
  create
    .command('measured-boot')
    .description('a measured-boot reference state (JSON) from a known-good event log')
    .requiredOption('--eventlog <file>', 'binary_bios_measurements')
    .option('--bank <bank>', 'PCR bank (default sha256)')
    .option('--pin-pcrs <list>', 'PCRs whose values are pinned, e.g. 0,2,4')
    .action(ctx.action(async (o: { eventlog: string; bank?: string; pinPcrs?: string }) => (await import('./commands/policy-create.js')).createMeasuredBoot(o, run)));
  create
    .command('runtime')
    .description("a Keylime-format runtime policy (JSON), with Keylime's create_runtime_policy flags")
    .option('-m, --ima-measurement-list [file]', 'from an IMA measurement list (default /sys/kernel/security/ima/ascii_runtime_measurements)')
    .option('--ima-log <file>', 'same as --ima-measurement-list FILE')
    .option('--rootfs <dir>', 'every regular file under DIR (paths relative to DIR, rooted at /)')
    .option('-a, --allowlist <file>', 'a legacy Keylime allowlist ("digest  path" lines), converted')
    .option('-e, --excludelist <file>', 'Keylime exclude list: one regex per line')
    .option('--exclude <regex>', 'an exclude regex; repeatable', collect)
    .option('--algo <alg>', 'hash algorithm for --rootfs: sha1, sha256 (default), sha384, sha512')
    .option('--hash-alg <alg>', 'same as --algo')
    .option('-o, --output <file>', 'write the policy to FILE instead of stdout')
    .addHelpText('after', '\nSources are merged, as Keylime does. Digests may be bare hex or prefixed (sha256:<hex>) in policies Keyhold reads.')
    .action(ctx.action(async (o: Record<string, unknown>) => (await import('./commands/policy-create.js')).createRuntime(o, run)));
  policy
    .command('import')
    .description("convert another tool's policy format")
    .command('keylime-mb')
    .description("a Keylime measured-boot reference state (create_mb_refstate output): explains what to run instead")
    .argument('<file>', 'the Keylime refstate JSON')
    .action(ctx.action(async (file: string) => (await import('./commands/policy-create.js')).importKeylimeMb(file, run)));

  program
    .command('ek-hash')
    .description("hex SHA-256 of an EK public key (the node identity): from a TPM, a PEM/DER key or an EK certificate")
    .option('--ek-pub <file>', 'EK public key: PEM/DER SPKI, or TPM2B_PUBLIC (tpm2_createek -u, tpm2_readpublic -o)')
    .option('--ek-cert <file>', 'EK certificate: PEM or DER (NV padding is stripped)')
    .option('-T, --tcti <tcti>', 'read the EK from a TPM with tpm2_createek (e.g. device:/dev/tpmrm0, swtpm:port=2321)')
    .option('--alg <alg>', 'EK type for --tcti: rsa (default) or ecc', 'rsa')
    .action(ctx.action(async (o: { ekPub?: string; ekCert?: string; tcti?: string; alg: string }) => (await import('./commands/ek-hash.js')).printEkHash(o, run)));

  program
    .command('image')
    .description('encrypted container images')
    .command('encrypt')
    .description('encrypt an OCI image for the node key provider (KEK in the KBS) and/or jwe recipients, as ocicrypt does')
    .requiredOption('-i, --input <ref>', 'plain image, oci:DIR:TAG')
    .requiredOption('-o, --output <ref>', 'encrypted image, oci:DIR:TAG')
    .option('--kid <uri>', "key provider: the KEK's KBS resource, kbs:///REPO/TYPE/TAG")
    .option('--kek-file <file>', 'the KEK: exactly 32 raw bytes')
    .option('--generate', 'a fresh random KEK (needs --upload: it is never written to disk)')
    .option('--packet-version <n>', 'CoCo annotation packet version, 1 or 2', '1')
    .option('--recipient <spec>', 'an ocicrypt jwe recipient, jwe:PUBLIC.pem; repeatable', collect)
    .option('--upload', "store the KEK in the KBS at the kid's path before encrypting (global --url and an admin token)")
    .action(ctx.action(async (o: Record<string, unknown>) => (await import('./commands/image-encrypt.js')).encryptImageCommand(o, run)));

  // These commands own their flags and output (tpm2-tools-style); they parse their own arguments.
  for (const [name, summary, load] of [
    ['eventlog', 'print a TCG PC Client event log and its replayed PCRs (like tpm2_eventlog)', () => import('./commands/eventlog.js')],
    ['verify-quote', 'verify a TPM quote (tpm2_quote output) strictly, like tpm2_checkquote', () => import('./commands/verify-quote.js')],
    ['verify-evidence', 'verify Azure CVM vTPM evidence (az-snp-vtpm, az-tdx-vtpm) offline, as the KBS does', () => import('./commands/verify-evidence.js')],
  ] as const) {
    program
      .command(name)
      .description(`${summary} ('keyhold ${name} --help')`)
      .helpOption(false)
      .allowUnknownOption()
      .allowExcessArguments()
      .argument('[args...]')
      .action(ctx.action(async (args: string[]) => (await load()).run([...args, ...passThroughGlobals(run)], run.io)));
  }

  // kbs-client's node-side verbs, run by the agent library (its flags: keyhold-agent --help).
  const nodeSide = async (agentArgv: string[]): Promise<number> => {
    const { runAgentCli } = await import('@keyhold/attestation-agent');
    const f = run.flags();
    const globals = [...(f.url !== undefined ? ['--url', f.url] : []), ...(f.certFile !== undefined ? ['--cert-file', f.certFile] : []), ...passThroughGlobals(run)];
    return runAgentCli([...agentArgv, ...globals], run.io, run.env, undefined, { flavor: 'kbs-client' });
  };
  program
    .command('attest')
    .description("on a node: attest with the TPM and print the token (kbs-client attest; flags: 'keyhold attest --help')")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]')
    .action(ctx.action(async (args: string[]) => nodeSide(['attest', ...args])));
  program
    .command('get-resource')
    .description("on a node: attest and fetch a secret, printed as base64 like kbs-client (--raw, -o FILE; 'keyhold get-resource --help')")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]')
    .action(
      ctx.action(async (args: string[]) => {
        if (args.length === 0) throw new UsageError('get-resource needs --path REPO/TYPE/TAG (or kbs:///REPO/TYPE/TAG)');
        return nodeSide(['get-resource', ...args]);
      }),
    );
}
