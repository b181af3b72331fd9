import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** RFC 6238 parameters every common authenticator app uses by default. */
export const TOTP = Object.freeze({ stepSeconds: 30, digits: 6, secretBytes: 20, issuer: 'Accord' });

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding (what otpauth:// URIs and authenticator apps expect). */
export function base32Encode(data: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** Decodes base32 (case-insensitive, padding and spaces ignored); undefined when it is not base32. */
export function base32Decode(text: string): Buffer | undefined {
  const clean = text.replace(/[\s=]/g, '').toUpperCase();
  const bytes: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of clean) {
    const v = ALPHABET.indexOf(ch);
    if (v < 0) return undefined;
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bytes.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(bytes);
}

/** RFC 4226 HOTP with HMAC-SHA-1, truncated to `digits` decimal digits. */
export function hotp(secret: Buffer, counter: number, digits: number = TOTP.digits): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', secret).update(msg).digest();
  const offset = (mac[mac.length - 1] ?? 0) & 0x0f;
  const bin = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(bin % 10 ** digits).padStart(digits, '0');
}

/** The RFC 6238 time step of an instant. */
export function totpStep(now: Date | number): number {
  const ms = typeof now === 'number' ? now : now.getTime();
  return Math.floor(ms / 1000 / TOTP.stepSeconds);
}

/** The code an authenticator app shows at `now`. */
export function totpCode(secret: Buffer, now: Date | number, digits: number = TOTP.digits): string {
  return hotp(secret, totpStep(now), digits);
}

/**
 * The time steps within ±`window` of `now` whose code is `code`, highest first (usually none or
 * one). Every candidate is compared in constant time, so timing does not tell which step matched.
 */
export function matchingSteps(secret: Buffer, code: string, now: Date | number, window = 1): number[] {
  if (!/^[0-9]{6}$/.test(code)) return [];
  const given = Buffer.from(code, 'utf8');
  const current = totpStep(now);
  const matched: number[] = [];
  for (let step = current + window; step >= current - window; step--) {
    if (step < 0) continue;
    if (timingSafeEqual(Buffer.from(hotp(secret, step), 'utf8'), given)) matched.push(step);
  }
  return matched;
}

/** 160 random bits, the RFC 4226 recommended secret length for HMAC-SHA-1. */
export function newTotpSecret(): Buffer {
  return randomBytes(TOTP.secretBytes);
}

/**
 * The otpauth:// URI authenticator apps import (as a QR code or pasted): issuer "Accord", label
 * "Accord:<email>", SHA-1, 6 digits, 30 s.
 */
export function otpauthUri(secret: Buffer, email: string): string {
  const label = `${encodeURIComponent(TOTP.issuer)}:${encodeURIComponent(email)}`;
  const q = new URLSearchParams({ secret: base32Encode(secret), issuer: TOTP.issuer, algorithm: 'SHA1', digits: String(TOTP.digits), period: String(TOTP.stepSeconds) });
  return `otpauth://totp/${label}?${q.toString()}`;
}
