import { request } from 'node:https';
import { cliError, RemoteError } from './output.ts';
import type { Profile } from './profile.ts';

/** The CLI's only way to the platform: its HTTPS API. */
export interface ApiClient {
  call<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
}

const TLS_HINTS: Record<string, string> = {
  SELF_SIGNED_CERT_IN_CHAIN: 'the server certificate is not trusted: pass --ca-file with the CA printed by `accord start`',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is not trusted: pass --ca-file',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not trusted: pass --ca-file with the CA that signed it',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the server certificate is not trusted: pass --ca-file with the CA that signed it',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate does not name this host',
  ECONNREFUSED: 'nothing is listening there (is `accord start` running?)',
};

/** A client for one server, trusting the given CA (or the system store). */
export function apiClient(profile: Pick<Profile, 'url' | 'ca' | 'token' | 'deviceToken'>, opts: { timeoutMs?: number } = {}): ApiClient {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const base = new URL(profile.url);
  if (base.protocol !== 'https:') throw cliError('CLI_USAGE', `The URL must use https: ${profile.url}`);
  return {
    call<T>(method: string, path: string, body?: unknown): Promise<T> {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      return new Promise<T>((resolve, reject) => {
        const req = request(
          new URL(path, base),
          {
            method,
            ...(profile.ca ? { ca: profile.ca } : {}),
            minVersion: 'TLSv1.2',
            timeout: timeoutMs,
            headers: {
              accept: 'application/json',
              'user-agent': 'accord-cli/0.1',
              ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
              ...(profile.token ? { authorization: `Bearer ${profile.token}` } : {}),
              // Only sign-in reads it; sent on sign-in steps alone, it reveals nothing elsewhere.
              ...(profile.deviceToken && path.startsWith('/api/v1/auth/') ? { 'accord-device': profile.deviceToken } : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              const status = res.statusCode ?? 0;
              // JSON documents are parsed; anything else (JSON lines, CEF) is handed back as text.
              const type = String(res.headers['content-type'] ?? '');
              let parsed: unknown = text;
              if (/json/.test(type) && !/ndjson/.test(type)) {
                try {
                  parsed = text ? JSON.parse(text) : undefined;
                } catch {
                  parsed = undefined;
                }
              }
              if (status >= 200 && status < 300) return resolve(parsed as T);
              const p = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as { code?: string; detail?: string; details?: unknown };
              reject(new RemoteError(p.code ?? `HTTP_${status}`, status, p.detail ?? `The server answered ${status}.`, p.details));
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs / 1000} s`)));
        // The socket timeout above measures idleness once connected; a TLS handshake that never
        // completes (or a server that trickles bytes) needs a deadline on the whole exchange.
        const deadline = setTimeout(() => req.destroy(Object.assign(new Error(`timed out after ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })), timeoutMs);
        deadline.unref();
        req.on('close', () => clearTimeout(deadline));
        req.on('error', (err: NodeJS.ErrnoException) => {
          const hint = (err.code && TLS_HINTS[err.code]) || err.message;
          reject(cliError('CLI_CONNECTION_FAILED', `Cannot reach ${base.origin}: ${hint}.`, { url: base.origin, reason: err.code ?? 'error' }));
        });
        if (payload) req.write(payload);
        req.end();
      });
    },
  };
}
