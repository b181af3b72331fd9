import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { canonicalJson } from './canonical.ts';

/** Signs checkpoints. The private key stays inside this object; only the public key leaves. */
export interface CheckpointSigner {
  readonly keyId: string;
  readonly publicKeyPem: string;
  sign(payload: Buffer): Buffer;
}

/** What a checkpoint attests: the chain's head at a sequence number. */
export interface CheckpointBody {
  readonly chain: string;
  readonly seq: number;
  /** Lowercase hex SHA-256 of the record at `seq`. */
  readonly hash: string;
  /** ISO 8601 UTC. */
  readonly signedAt: string;
  readonly keyId: string;
}

/** A checkpoint as exported to files: the body plus its Ed25519 signature (base64). */
export interface SignedCheckpoint extends CheckpointBody {
  readonly signature: string;
}

/** The bytes that are signed: the canonical JSON of the body. */
export const checkpointPayload = (body: CheckpointBody): Buffer =>
  Buffer.from(canonicalJson({ chain: body.chain, seq: body.seq, hash: body.hash, signedAt: body.signedAt, keyId: body.keyId }), 'utf8');

/** Key id: the first 16 hex digits of SHA-256 over the public key (SPKI DER). */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

function signerFrom(privateKey: KeyObject): CheckpointSigner {
  const publicKey = createPublicKey(privateKey);
  return {
    keyId: keyIdOf(publicKey),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    sign: (payload) => sign(null, payload, privateKey),
  };
}

/**
 * Loads the Ed25519 checkpoint key from its file, creating it (mode 0600) on first start. Nodes
 * sharing one database must share this file, as they share the TLS key. (The data-protection
 * capability moves it under the KMS root key.)
 */
export function loadOrCreateSigner(path: string): CheckpointSigner {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    try {
      writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { flag: 'wx', mode: 0o600 });
    } catch (err) {
      // Another node created it first: use theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  chmodSync(path, 0o600);
  return signerFrom(createPrivateKey(readFileSync(path)));
}

/** An in-memory signer (tests, benchmarks). */
export function ephemeralSigner(): CheckpointSigner {
  return signerFrom(generateKeyPairSync('ed25519').privateKey);
}

/** Checks a checkpoint's signature against a PEM public key. */
export function verifyCheckpointSignature(cp: SignedCheckpoint, publicKeyPem: string): boolean {
  try {
    return verify(null, checkpointPayload(cp), createPublicKey(publicKeyPem), Buffer.from(cp.signature, 'base64'));
  } catch {
    return false;
  }
}
