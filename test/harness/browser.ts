// A browser for federation tests: follows redirects across origins, keeps cookies per origin,
// reads the HTML form a page shows and submits it, like a user would. Requests to the platform
// under test go through Fastify's inject (the in-process server); everything else is real
// HTTPS to loopback peers, trusting the given CAs (without `app`, the platform too is reached
// over real HTTPS).
import { request } from 'node:https';
import type { FastifyInstance } from 'fastify';

export interface Page {
  readonly url: string;
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

export class Browser {
  readonly #jar = new Map<string, Map<string, string>>();
  readonly #app: FastifyInstance | undefined;
  readonly #origin: string;
  readonly #ca: string[];

  constructor(opts: { app?: FastifyInstance; origin: string; ca: string[] }) {
    this.#app = opts.app;
    this.#origin = opts.origin;
    this.#ca = opts.ca;
  }

  /** The cookies this browser holds for an origin. */
  cookies(origin: string): Map<string, string> {
    let m = this.#jar.get(origin);
    if (!m) {
      m = new Map();
      this.#jar.set(origin, m);
    }
    return m;
  }

  #store(origin: string, setCookie: string | string[] | undefined): void {
    for (const c of Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []) {
      const [pair, ...attrs] = c.split(';');
      const eq = (pair as string).indexOf('=');
      const name = (pair as string).slice(0, eq).trim();
      const value = (pair as string).slice(eq + 1).trim();
      const maxAge = attrs.map((a) => a.trim().toLowerCase()).find((a) => a.startsWith('max-age='));
      if (value === '' || maxAge === 'max-age=0') this.cookies(origin).delete(name);
      else this.cookies(origin).set(name, value);
    }
  }

  /** One request, no redirect followed. */
  async send(method: string, url: string, form?: URLSearchParams): Promise<Page> {
    const u = new URL(url);
    const cookie = [...this.cookies(u.origin)].map(([k, v]) => `${k}=${v}`).join('; ');
    const headers: Record<string, string> = { accept: 'text/html,application/json', ...(cookie ? { cookie } : {}) };
    const body = form?.toString();
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    let page: Page;
    if (this.#app && u.origin === this.#origin) {
      const r = await this.#app.inject({ method: method as 'GET', url: u.pathname + u.search, headers, ...(body === undefined ? {} : { payload: body }) });
      page = { url, status: r.statusCode, headers: r.headers as Page['headers'], body: r.body };
    } else {
      page = await new Promise<Page>((resolve, reject) => {
        const req = request(u, { method, headers, ca: this.#ca }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ url, status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.on('error', reject);
        if (body !== undefined) req.write(body);
        req.end();
      });
    }
    this.#store(u.origin, page.headers['set-cookie']);
    return page;
  }

  /** A request, then every redirect it leads to (at most 20), as a browser would. */
  async go(url: string, method = 'GET', form?: URLSearchParams, stopBefore?: (url: string) => boolean): Promise<Page> {
    let page = await this.send(method, url, form);
    for (let i = 0; i < 20 && page.status >= 300 && page.status < 400; i++) {
      const loc = page.headers.location;
      if (typeof loc !== 'string') break;
      const next = new URL(loc, page.url).href;
      if (stopBefore?.(next)) break;
      // 307/308 keep the method and body; 301-303 turn a POST into a GET.
      page = page.status === 307 || page.status === 308 ? await this.send(method, next, form) : await this.send('GET', next);
    }
    return page;
  }

  /** Fills the page's first form (its fields, overridden by `fields`) and submits it. */
  async submit(page: Page, fields: Record<string, string>, stopBefore?: (url: string) => boolean): Promise<Page> {
    const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(page.body);
    if (!form) throw new Error(`no form on ${page.url} (status ${page.status}): ${page.body.slice(0, 300)}`);
    const attr = (tag: string, name: string) => new RegExp(`\\b${name}="([^"]*)"`, 'i').exec(tag)?.[1];
    const htmlText = (s: string) => s.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n))).replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
    const action = new URL(htmlText(attr(form[1] as string, 'action') ?? page.url), page.url).href;
    const method = (attr(form[1] as string, 'method') ?? 'GET').toUpperCase();
    const data = new URLSearchParams();
    for (const input of (form[2] as string).matchAll(/<(?:input|textarea)\b([^>]*)>/gi)) {
      const name = attr(input[1] as string, 'name');
      if (name) data.set(htmlText(name), htmlText(attr(input[1] as string, 'value') ?? ''));
    }
    for (const [k, v] of Object.entries(fields)) data.set(k, v);
    return method === 'POST' ? this.go(action, 'POST', data, stopBefore) : this.go(`${action}${action.includes('?') ? '&' : '?'}${data}`, 'GET', undefined, stopBefore);
  }
}
