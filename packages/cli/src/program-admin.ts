import { UsageError, type Command, type ProgramContext } from '@keyhold/command-line';
import type { KeyholdRun } from './keyhold-run.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** `config` (kbs-client's verbs and Keyhold's listings), `ca`, `node`, `audit`: the KBS admin API. */
export function defineAdminCommands(program: Command, ctx: ProgramContext, run: KeyholdRun): void {
  const config = program
    .command('config')
    .description('KBS administration, kbs-client compatible: resources, policies, reference values')
    .addHelpText('after', "\nGlobal options (--url, --cert-file, --admin-token-file / --auth-private-key, --json) may come anywhere: keyhold --url U config --admin-token-file T set-resource ...");
  const cfg = () => import('./commands/config.js');
  const act = <O>(fn: (m: Awaited<ReturnType<typeof cfg>>, o: O) => Promise<number>) => ctx.action(async (o: O) => fn(await cfg(), o));

  config
    .command('set-resource')
    .description('store a secret (a new version)')
    .requiredOption('--path <path>', 'REPO/TYPE/TAG')
    .requiredOption('--resource-file <file>', 'the secret (raw bytes)')
    .action(act((m, o: { path: string; resourceFile: string }) => m.setResource(o, run)));
  config
    .command('delete-resource')
    .description('delete a secret')
    .requiredOption('--path <path>', 'REPO/TYPE/TAG')
    .action(act((m, o: { path: string }) => m.deleteResource(o, run)));
  config
    .command('list-resources')
    .description('resource metadata, never values')
    .option('--repository <repo>', 'only this repository')
    .action(act((m, o: { repository?: string }) => m.listResources(o, run)));
  config
    .command('get-resource-versions')
    .description('metadata of each retained version of a resource')
    .requiredOption('--path <path>', 'REPO/TYPE/TAG')
    .action(act((m, o: { path: string }) => m.getResourceVersions(o, run)));
  config
    .command('set-resource-policy')
    .description('CEL resource policy (JSON document or bare rule), global or for one repository')
    .option('--policy-file <file>', 'policy document (JSON) or a bare CEL rule')
    .option('--allow-all', 'built-in: release to anyone holding a valid token')
    .option('--deny-all', 'built-in: release nothing')
    .option('--affirming', 'built-in: release when ear.status is "affirming"')
    .option('--default', "built-in: Keyhold's default (affirming; see 'keyhold config --help' on differences from Trustee)")
    .option('--repository <repo>', 'scope the policy to repository REPO')
    .action(act((m, o: { policyFile?: string; allowAll?: boolean; denyAll?: boolean; affirming?: boolean; default?: boolean; repository?: string }) => m.setResourcePolicy(o, run)));
  config
    .command('get-resource-policy')
    .description('the resource policy in effect (global or for a repository)')
    .option('--repository <repo>', 'the policy in effect for REPO')
    .action(act((m, o: { repository?: string }) => m.getResourcePolicy(o, run)));
  config
    .command('delete-resource-policy')
    .description('back to the global policy / the built-in default')
    .option('--repository <repo>', "delete REPO's policy")
    .action(act((m, o: { repository?: string }) => m.deleteResourcePolicy(o, run)));
  config
    .command('set-attestation-policy')
    .description('CEL attestation policy document; stored under --id (the document id is set to it)')
    .requiredOption('--policy-file <file>', 'policy document (JSON, see packages/kbs/policies)')
    .option('--id <id>', "policy id (default: the document's id, else \"default\")")
    .option('--type <type>', 'policy language: cel (rego is refused by the KBS)', 'cel')
    .action(act((m, o: { policyFile: string; id?: string; type: string }) => m.setAttestationPolicy(o, run)));
  config
    .command('get-attestation-policy')
    .description('one attestation policy (default: list all, and which is active)')
    .option('--id <id>', 'policy id')
    .action(act((m, o: { id?: string }) => m.getAttestationPolicy(o, run)));
  config
    .command('delete-attestation-policy')
    .description('delete an attestation policy')
    .requiredOption('--id <id>', 'policy id')
    .action(act((m, o: { id: string }) => m.deleteAttestationPolicy(o, run)));
  config
    .command('list-policies')
    .description('every stored policy')
    .action(act((m) => m.listPolicies(run)));

  const rvFlags = (c: Command): Command =>
    c
      .option('--as-integer', "kbs-client: send the value as an integer (refused: Keyhold's reference values are strings)")
      .option('--as-bool', "kbs-client: send the value as a bool (refused: Keyhold's reference values are strings)")
      .option('--as-single-value', "kbs-client: send the value without a list (refused: Keyhold's reference values are lists)");
  rvFlags(
    config
      .command('set-reference-value')
      .description('set a reference value list (Trustee RVPS "sample" message); replaces the list')
      .requiredOption('--name <name>', 'reference value name, e.g. trusted_ak, tpm_pcr07')
      .requiredOption('--value <value>', 'one value; repeat for a list', collect),
  ).action(act((m, o: { name: string; value: string[]; asInteger?: boolean; asBool?: boolean; asSingleValue?: boolean }) => m.setReferenceValue(o, run)));
  rvFlags(
    config
      .command('set-sample-reference-value')
      .description('same, kbs-client form: NAME VALUE...')
      .argument('<name>', 'reference value name')
      .argument('<values...>', 'one or more values'),
  ).action(
    ctx.action(async (name: string, values: string[], o: { asInteger?: boolean; asBool?: boolean; asSingleValue?: boolean }) => (await cfg()).setReferenceValue({ ...o, name, value: values }, run)),
  );
  config
    .command('get-reference-values')
    .description('all reference values (or one with --name)')
    .option('--name <name>', 'only this one')
    .action(act((m, o: { name?: string }) => m.getReferenceValues(o, run)));
  config
    .command('get-reference-value')
    .description('one reference value')
    .option('--id <name>', 'its name')
    .option('--name <name>', 'its name (same as --id)')
    .action(
      act((m, o: { id?: string; name?: string }) => {
        if ((o.id === undefined) === (o.name === undefined)) throw new UsageError('get-reference-value needs --id NAME (or --name NAME)');
        return m.getReferenceValues({ name: (o.id ?? o.name) as string }, run);
      }),
    );
  config
    .command('delete-reference-value')
    .description('delete a reference value')
    .option('--name <name>', 'its name')
    .option('--id <name>', 'its name (same as --name)')
    .action(act((m, o: { id?: string; name?: string }) => m.deleteReferenceValue({ name: o.name ?? o.id }, run)));

  const ca = program.command('ca').description('EK CA store of a KBS (TPM vendor roots and intermediates)');
  const caMod = () => import('./commands/ca.js');
  ca.command('add')
    .description('upload EK CA certificates (PEM with one or more certificates, or DER); says which were already present')
    .argument('<files...>', 'certificate files')
    .action(ctx.action(async (files: string[]) => (await caMod()).addCa(files, run)));
  ca.command('list')
    .description("list the KBS's EK CA store")
    .action(ctx.action(async () => (await caMod()).listCa(run)));

  const node = program
    .command('node')
    .description('EK allowlist, enrolled nodes and continuous attestation (state, bans) of a KBS')
    .addHelpText('after', "\nEK_HASH: hex SHA-256 of the EK's DER SPKI (see 'keyhold ek-hash'). NODE_ID: the EK hash, or ak: + hex SHA-256 of the AK's SPKI for nodes trusted by their AK only.");
  const nodeMod = () => import('./commands/node.js');
  node
    .command('allow')
    .description('add an EK to the allowlist')
    .argument('[ekHash]', '64 hex digits')
    .option('--ek-pub <file>', 'the EK public key instead (PEM/DER SPKI or TPM2B_PUBLIC)')
    .option('--note <text>', 'a note kept with the entry')
    .action(ctx.action(async (hash: string | undefined, o: { ekPub?: string; note?: string }) => (await nodeMod()).allowNode(hash, o, run)));
  node
    .command('disallow')
    .description('remove an EK from the allowlist')
    .argument('<ekHash>', '64 hex digits')
    .action(ctx.action(async (hash: string) => (await nodeMod()).disallowNode(hash, run)));
  node
    .command('revoke')
    .description('revoke an enrolled node: nothing is released to it afterwards')
    .argument('<nodeId>', '64 hex digits, or ak: + 64 hex digits')
    .action(ctx.action(async (id: string) => (await nodeMod()).revokeNode(id, run)));
  node
    .command('remove')
    .description("delete a node's enrolment (it must activate again; lifts a revocation)")
    .argument('<nodeId>', '64 hex digits, or ak: + 64 hex digits')
    .action(ctx.action(async (id: string) => (await nodeMod()).removeNode(id, run)));
  node
    .command('list')
    .description('enrolled nodes and allowlisted EKs (every page)')
    .action(ctx.action(async () => (await nodeMod()).listNodes(run)));
  node
    .command('status')
    .description('continuous attestation: every node (state, last verdict and when, reason, SPIFFE ID, certificate expiry), or one node with its history')
    .argument('[nodeId]', '64 hex digits, or ak: + 64 hex digits')
    .option('--state <state>', 'only nodes in this state: active, stale, banned or revoked')
    .action(ctx.action(async (id: string | undefined, o: { state?: string }) => (await nodeMod()).nodeStatus(id, o, run)));
  node
    .command('unban')
    .description('clear a ban (after a failed appraisal): the node may attest and be released to again; audited')
    .argument('<nodeId>', '64 hex digits, or ak: + 64 hex digits')
    .action(ctx.action(async (id: string) => (await nodeMod()).unbanNode(id, run)));

  program
    .command('audit')
    .description('read and verify the KBS audit trail: a JSON-lines file, or the KBS (global --url and an admin token)')
    .option('--file <file>', 'the audit log file')
    .option('--since <when>', 'an RFC 3339 time, a record seq, or a duration back from now (30m, 24h, 7d)')
    .option('--node <node>', 'only records about this node')
    .option('--kind <kind>', 'auth, attest, release, deny or admin')
    .option('--verify', 'check the hash chain first and name the first bad seq (exit 1 when broken)')
    .action(ctx.action(async (o: { file?: string; since?: string; node?: string; kind?: string; verify?: boolean }) => (await import('./commands/audit.js')).audit(o, run)));
}
