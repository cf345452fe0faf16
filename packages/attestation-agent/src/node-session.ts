import { readFile } from 'node:fs/promises';
import { readCaFile } from '@keyhold/command-line';
import { parseInitData, ProtocolError, type InitData, type ParsedInitData } from '@keyhold/protocol';
import { AgentError } from './errors.js';
import type { AgentConfig } from './config.js';
import { loadOrCreateAk, type LoadedAk } from './tpm/ak-store.js';
import type { TpmDevice } from './tpm/device.js';
import { openTpmDevice } from './tpm/tss-device.js';
import { ensureInitDataBound } from './attester/init-data-binding.js';
import { TpmAttester } from './attester/tpm-attester.js';
import { BootLogContributor } from './attester/boot-log-contributor.js';
import { KbsClient } from './kbs-client/kbs-client.js';
import { identityContributorFor, type IdentityContributor } from './attester/identity-contributor.js';
import { EkPublicCache } from './attester/ek-public-cache.js';
import { EkCertificateCache } from './attester/ek-certificate-cache.js';
import { softwareTeeKeys, type TeeKeySource } from './kbs-client/tee-key.js';
import { TpmTeeKeySource } from './kbs-client/tpm-tee-key.js';
import { SealedJweCache } from './kbs-client/sealed-jwe-cache.js';
import { azVtpmSessionParts } from './attester/az-vtpm-session.js';
import { markPhase } from './phase-channel.js';

/** An open TPM with the agent's AK loaded, and a KBS client that attests with it. */
export interface NodeSession {
  readonly tpm: TpmDevice;
  readonly ak: LoadedAk;
  readonly client: KbsClient;
  readonly initData: ParsedInitData | undefined;
  close(): Promise<void>;
}

/** Read and parse the init-data TOML file named in the config. */
export async function readInitData(file: string): Promise<{ wire: InitData; parsed: ParsedInitData }> {
  let body: string;
  try {
    body = await readFile(file, 'utf8');
  } catch (cause) {
    throw new AgentError('CONFIG_INVALID', `cannot read init-data file ${file}`, { cause });
  }
  const wire: InitData = { format: 'toml', body };
  try {
    return { wire, parsed: parseInitData(wire) };
  } catch (err) {
    if (err instanceof ProtocolError) throw new AgentError('CONFIG_INVALID', `init-data: ${err.message}`, { cause: err });
    throw err;
  }
}

/** What a command may add to the session it opens. */
export interface NodeSessionOptions {
  /** An open TPM to use instead of the config's TCTI (tests). */
  tpm?: TpmDevice;
  /** Trustee `additional_evidence` bound into each attestation (`run --node-cert-dir`: the node-key binding). */
  additionalEvidence?: () => string;
}

/** Open the TPM named by the config, load the AK, bind init-data, and build the KBS client. */
export async function openNodeSession(config: AgentConfig, opts: NodeSessionOptions = {}): Promise<NodeSession> {
  const tpm = opts.tpm ?? (await openTpmDevice({ tcti: config.tcti }));
  let ak: LoadedAk | undefined;
  let identity: IdentityContributor | undefined;
  try {
    // Azure CVM vTPM evidence (--tee az-*|auto) uses the paravisor's AK and its own attester.
    const cvm = await azVtpmSessionParts(tpm, config);
    ak =
      cvm !== undefined
        ? cvm.ak
        : config.akMode === 'persistent'
        ? await loadOrCreateAk(tpm, { alg: config.akAlg, persistentHandle: config.akHandle, persist: config.akCreate })
        : await loadOrCreateAk(tpm, { alg: config.akAlg, stateDir: config.stateDir });
    markPhase('tpm:ak');
    let initData: { wire: InitData; parsed: ParsedInitData } | undefined;
    if (config.initDataFile !== undefined) {
      initData = await readInitData(config.initDataFile);
      await ensureInitDataBound(tpm, initData.parsed.digest);
    }
    identity = config.ekIdentity && cvm === undefined ? identityContributorFor(tpm, ak, config.ekAlg, new EkPublicCache(config.stateDir), new EkCertificateCache(config.stateDir)) : undefined;
    let teeKeys: TeeKeySource;
    let cache: SealedJweCache | undefined;
    if (config.teeKey === 'tpm-rsa' || config.teeKey === 'tpm-ecc') {
      const tpmKeys = new TpmTeeKeySource({ tpm, ak: ak.ak, alg: config.teeKey === 'tpm-rsa' ? 'rsa' : 'ecc', sealToPcrs: config.sealToPcrs });
      teeKeys = tpmKeys;
      cache = config.cacheDir !== undefined ? new SealedJweCache({ dir: config.cacheDir, keys: tpmKeys }) : undefined;
    } else {
      teeKeys = softwareTeeKeys(config.teeKey);
    }
    const bootLogs = new BootLogContributor({ eventLogFile: config.eventLogFile, imaLogFile: config.imaLogFile });
    // --cert-file: the CA of an https KBS (kbs-client's flag), trusted for this client only.
    const caPem = config.caFile !== undefined ? await readCaFile(config.caFile) : undefined;
    const client = new KbsClient({
      url: config.url,
      ...(caPem !== undefined ? { caPem } : {}),
      attester: cvm !== undefined ? cvm.attester([bootLogs]) : new TpmAttester(tpm, ak.ak, [...(identity !== undefined ? [identity] : []), bootLogs]),
      teeKeys,
      ...(cache !== undefined ? { cache } : {}),
      timeoutMs: config.timeoutMs,
      ...(initData !== undefined ? { initData: initData.wire } : {}),
      ...(opts.additionalEvidence !== undefined ? { additionalEvidence: opts.additionalEvidence } : {}),
    });
    const loaded = ak;
    markPhase('session');
    return {
      tpm,
      ak: loaded,
      client,
      initData: initData?.parsed,
      async close() {
        client.close();
        await identity?.close().catch(() => undefined);
        await loaded.release().catch(() => undefined);
        await tpm.close();
      },
    };
  } catch (err) {
    await identity?.close().catch(() => undefined);
    await ak?.release().catch(() => undefined);
    await tpm.close();
    throw err;
  }
}
