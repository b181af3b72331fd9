// A software WebAuthn authenticator for tests: an ES256 (P-256) key per credential, 'none'
// attestation, and a signature counter the test can set (to play a cloned or replaying device).
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';

/** The minimal CBOR (RFC 8949) an authenticator emits: unsigned/negative ints, bytes, text, maps. */
function cborHead(major: number, n: number): Buffer {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(n, 1);
    return b;
  }
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

type Cbor = number | string | Buffer | Map<number | string, Cbor>;

export function cbor(v: Cbor): Buffer {
  if (typeof v === 'number') return v >= 0 ? cborHead(0, v) : cborHead(1, -1 - v);
  if (typeof v === 'string') {
    const s = Buffer.from(v, 'utf8');
    return Buffer.concat([cborHead(3, s.length), s]);
  }
  if (Buffer.isBuffer(v)) return Buffer.concat([cborHead(2, v.length), v]);
  const parts: Buffer[] = [cborHead(5, v.size)];
  for (const [k, val] of v) parts.push(cbor(k), cbor(val));
  return Buffer.concat(parts);
}

const b64u = (b: Buffer) => b.toString('base64url');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

const FLAG_UP = 0x01;
const FLAG_UV = 0x04;
const FLAG_AT = 0x40;

interface Credential {
  readonly id: Buffer;
  readonly privateKey: KeyObject;
  readonly cose: Buffer;
  counter: number;
}

/** What `navigator.credentials.create()` returns, as JSON (RegistrationResponseJSON). */
export interface RegistrationJson {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; attestationObject: string; transports: string[] };
  clientExtensionResults: Record<string, never>;
  authenticatorAttachment: 'platform';
}

/** What `navigator.credentials.get()` returns, as JSON (AuthenticationResponseJSON). */
export interface AssertionJson {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; authenticatorData: string; signature: string };
  clientExtensionResults: Record<string, never>;
  authenticatorAttachment: 'platform';
}

/**
 * One authenticator, bound to an origin the way a browser is. It creates credentials for the
 * relying party named in the options and signs assertions with them; options let a test break
 * one thing at a time (the counter, the challenge, the origin).
 */
export class SoftAuthenticator {
  readonly origin: string;
  readonly #credentials = new Map<string, Credential>();
  readonly #aaguid = Buffer.alloc(16);

  constructor(origin: string) {
    this.origin = origin;
  }

  /** The ids (base64url) of the credentials this authenticator holds. */
  get credentialIds(): string[] {
    return [...this.#credentials.keys()];
  }

  /** Sets a credential's signature counter (the next assertion reports counter + 1). */
  setCounter(credentialId: string, counter: number): void {
    const c = this.#credentials.get(credentialId);
    if (!c) throw new Error(`no credential ${credentialId}`);
    c.counter = counter;
  }

  /** Answers registration options (PublicKeyCredentialCreationOptionsJSON) with a new ES256 credential. */
  register(options: { challenge: string; rp: { id?: string } }, opts: { origin?: string; challenge?: string } = {}): RegistrationJson {
    const rpId = options.rp.id;
    if (!rpId) throw new Error('options.rp.id missing');
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const cose = cbor(
      new Map<number, Cbor>([
        [1, 2], // kty: EC2
        [3, -7], // alg: ES256
        [-1, 1], // crv: P-256
        [-2, Buffer.from(jwk.x as string, 'base64url')],
        [-3, Buffer.from(jwk.y as string, 'base64url')],
      ]),
    );
    const id = randomBytes(32);
    const cred: Credential = { id, privateKey, cose, counter: 0 };
    this.#credentials.set(b64u(id), cred);
    const idLen = Buffer.alloc(2);
    idLen.writeUInt16BE(id.length);
    const counter = Buffer.alloc(4);
    const authData = Buffer.concat([sha256(rpId), Buffer.from([FLAG_UP | FLAG_UV | FLAG_AT]), counter, this.#aaguid, idLen, id, cose]);
    const clientData = Buffer.from(JSON.stringify({ type: 'webauthn.create', challenge: opts.challenge ?? options.challenge, origin: opts.origin ?? this.origin, crossOrigin: false }));
    const attestationObject = cbor(
      new Map<string, Cbor>([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', authData],
      ]),
    );
    return {
      id: b64u(id),
      rawId: b64u(id),
      type: 'public-key',
      response: { clientDataJSON: b64u(clientData), attestationObject: b64u(attestationObject), transports: ['internal'] },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    };
  }

  /**
   * Answers authentication options (PublicKeyCredentialRequestOptionsJSON) with the first allowed
   * credential it holds. The counter goes up by one unless `counter` pins the reported value.
   */
  authenticate(
    options: { challenge: string; rpId?: string; allowCredentials?: { id: string }[] },
    opts: { counter?: number; challenge?: string; origin?: string; credentialId?: string } = {},
  ): AssertionJson {
    const rpId = options.rpId;
    if (!rpId) throw new Error('options.rpId missing');
    const allowed = options.allowCredentials?.map((c) => c.id) ?? this.credentialIds;
    const id = opts.credentialId ?? allowed.find((a) => this.#credentials.has(a));
    const cred = id === undefined ? undefined : this.#credentials.get(id);
    if (!id || !cred) throw new Error('no allowed credential on this authenticator');
    const reported = opts.counter ?? cred.counter + 1;
    if (opts.counter === undefined) cred.counter = reported;
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(reported);
    const authData = Buffer.concat([sha256(rpId), Buffer.from([FLAG_UP | FLAG_UV]), counter]);
    const clientData = Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge: opts.challenge ?? options.challenge, origin: opts.origin ?? this.origin, crossOrigin: false }));
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientData)]), cred.privateKey);
    return {
      id,
      rawId: id,
      type: 'public-key',
      response: { clientDataJSON: b64u(clientData), authenticatorData: b64u(authData), signature: b64u(signature) },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    };
  }
}
