import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';

/** Answers from identity providers are small (discovery, JWKS, tokens): anything bigger is refused. */
const MAX_BODY = 1024 * 1024;

/**
 * A fetch for talking to one identity provider: HTTPS only, trusting the system's CAs plus the
 * provider's own CA when one is configured (enterprise IdPs often sit behind a private CA), with
 * no redirects followed and a size cap. Node's global fetch cannot take a CA per call without
 * the undici package, hence this small adapter over node:https.
 */
export function peerFetch(ca: string | undefined) {
  return async (url: string, options: { body?: unknown; headers?: Record<string, string>; method?: string; signal?: AbortSignal | null }): Promise<Response> => {
    const u = new URL(url);
    if (u.protocol !== 'https:') throw new TypeError(`refusing a non-https request to ${u.origin}`);
    const body = options.body === undefined || options.body === null ? undefined : typeof options.body === 'string' ? options.body : options.body instanceof URLSearchParams ? options.body.toString() : Buffer.from(options.body as Uint8Array);
    return new Promise<Response>((resolve, reject) => {
      const req = httpsRequest(
        u,
        {
          method: options.method ?? 'GET',
          headers: options.headers ?? {},
          ...(ca ? { ca: [ca, ...rootCertificates] } : {}),
          minVersion: 'TLSv1.2',
          ...(options.signal ? { signal: options.signal } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_BODY) req.destroy(new Error('identity provider answer too large'));
            else chunks.push(c);
          });
          res.on('end', () => {
            const headers = new Headers();
            for (const [k, v] of Object.entries(res.headers)) {
              if (Array.isArray(v)) for (const x of v) headers.append(k, x);
              else if (v !== undefined) headers.set(k, String(v));
            }
            const status = res.statusCode ?? 500;
            const noBody = status === 204 || status === 304;
            resolve(new Response(noBody ? null : Buffer.concat(chunks), { status, headers }));
          });
          res.on('error', reject);
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('identity provider timed out')));
      req.on('error', reject);
      if (body !== undefined) req.write(body);
      req.end();
    });
  };
}

