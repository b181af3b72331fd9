// Field encryption library: AES-256-GCM envelopes bound to tenant, stage, entity, field and record,
// and blind indexes for equality search. Only `node:crypto`; no I/O, no key storage (keys come from
// the key hierarchy as `DataKey`s and index keys).
export {
  type BlindIndexOptions,
  blindIndex,
  DEFAULT_INDEX_BYTES,
  deriveFieldKey,
  type FieldKeyPurpose,
  MAX_INDEX_BYTES,
  MIN_INDEX_BYTES,
  normaliseForIndex,
} from './blind-index.ts';
export type { FieldContext, FieldKeyContext } from './context.ts';
export {
  type DataKey,
  decryptField,
  ENVELOPE_OVERHEAD,
  encryptField,
  envelopeFromString,
  envelopeKeyVersion,
  envelopeToString,
  FORMAT_VERSION,
  type KeyLookup,
} from './envelope.ts';
export { CryptoError, type CryptoErrorCode, isCryptoError } from './errors.ts';
