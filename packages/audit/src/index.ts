export { AuditFormatError, type AuditFormatErrorCode } from './errors.js';
export {
  AUDIT_KINDS,
  GENESIS_HASH,
  MAX_AUDIT_FIELD_CHARS,
  auditRecordHash,
  checkAuditFields,
  nextAuditRecord,
  decodeUnverifiedAuditRecord,
  type AuditKind,
  type AuditFields,
  type AuditRecord,
} from './record.js';
export { verifyAuditChain, verifyParsedAuditLog, type AuditChainVerification, type VerifyAuditChainOptions } from './verify-chain.js';
export { parseAuditLog, formatAuditLine, MAX_AUDIT_LINE_CHARS, MAX_AUDIT_LOG_CHARS, type ParsedAuditLog } from './parse-log.js';
export { filterAuditRecords, type AuditQuery } from './query.js';
