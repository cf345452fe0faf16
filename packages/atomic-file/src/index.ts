export { writeFileAtomic, syncDir } from './write-file-atomic.js';
export { removeStaleTempFiles } from './remove-stale-temp-files.js';
export type { RemoveStaleTempFilesOptions } from './remove-stale-temp-files.js';
export { acquireDirLock } from './dir-lock.js';
export type { AcquireDirLockOptions, DirLock } from './dir-lock.js';
export { AtomicFileError } from './errors.js';
export type { AtomicFileErrorCode } from './errors.js';
