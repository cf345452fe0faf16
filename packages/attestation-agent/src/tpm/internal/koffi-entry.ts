/**
 * What the TPM layer requires to load koffi: its package name. The agent's bundles replace this
 * module (scripts/bundle-cli.mjs) with the path of the native module koffi's entry loaded at
 * bundling, which the bundle loader also stamps: resolving the package name and running koffi's
 * loader script at run time cost several ms of every TPM command's start.
 */
export function koffiEntry(): string {
  return 'koffi';
}
