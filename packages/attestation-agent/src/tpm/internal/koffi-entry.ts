/**
 * What the TPM layer requires to load koffi: its package name. The agent's bundle replaces this
 * module (scripts/bundle-cli.mjs) with the path of the koffi entry file resolved at bundling, which
 * the bundle loader also stamps: resolving the package name at run time loads node's ESM resolver
 * for koffi's `exports` map and walks node_modules, several ms of every TPM command's start.
 */
export function koffiEntry(): string {
  return 'koffi';
}
