// A real OpenID provider for the federation tests: the `oidc-provider` package (a certified
// OP) on loopback over HTTPS with a throwaway CA, with a small directory of users behind a real
// login form (password checked) and consent granted for the one client. A tamper switch
// rewrites the ID token of the next token response, the way a hostile network or a broken OP
// would, so the relying party's checks are tested against the real protocol exchange.
import { createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Provider from 'oidc-provider';
import { createCertificateAuthority, issueServerCertificate } from './tls.ts';

export interface DirectoryUser {
  password: string;
  email: string;
  name: string;
  groups: string[];
}

export type Tamper = 'wrong-audience' | 'expired' | 'nonce' | 'bad-signature' | 'alg-none';

export interface TestOp {
  readonly issuer: string;
  /** PEM of the CA that signed the OP's certificate (the RP must trust it). */
  readonly caPem: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Users by login name; change groups between sign-ins to test re-sync. */
  readonly users: Map<string, DirectoryUser>;
  /** Rewrites the ID token of the next token response, once. */
  tamperNext(t: Tamper | undefined): void;
  /** Token responses served so far (the RP's back-channel calls, counted for the tests). */
  readonly tokenCalls: () => number;
  stop(): Promise<void>;
}

const b64u = (b: Buffer | string) => Buffer.from(b).toString('base64url');

function resign(jwt: string, change: (h: Record<string, unknown>, p: Record<string, unknown>) => void, key: KeyObject | null): string {
  const [h, p] = jwt.split('.') as [string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString());
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
  change(header, payload);
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  if (!key) return `${input}.`;
  return `${input}.${b64u(sign('sha256', Buffer.from(input), key))}`;
}

async function readForm(req: NodeJS.ReadableStream): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Starts the OP; `redirectUris` are the RP's callback URLs. */
export async function startTestOp(opts: { redirectUris: string[]; users: Record<string, DirectoryUser> }): Promise<TestOp> {
  const dir = await mkdtemp(join(tmpdir(), 'accord-op-'));
  const ca = await createCertificateAuthority(dir);
  const cert = await issueServerCertificate(ca, dir, { commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const tls = { cert: await readFile(cert.certFile), key: await readFile(cert.keyFile) };
  let handler: ((req: never, res: never) => void) | undefined;
  const server: Server = createServer(tls, (req, res) => (handler as (a: typeof req, b: typeof res) => void)(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'op-key-1', alg: 'RS256', use: 'sig' };
  const signingKey = createPrivateKey({ key: jwk as never, format: 'jwk' });
  const rogueKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const users = new Map(Object.entries(opts.users));
  const clientId = 'accord-rp';
  const clientSecret = randomBytes(24).toString('base64url');
  let tamper: Tamper | undefined;
  let tokenCalls = 0;

  const provider = new Provider(issuer, {
    clients: [{ client_id: clientId, client_secret: clientSecret, redirect_uris: opts.redirectUris, grant_types: ['authorization_code'], response_types: ['code'] }],
    jwks: { keys: [jwk as never] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    // Consent is implied for this one first-party client (what an enterprise IdP does for apps
    // its admin assigned); the login form below is still a real password check.
    loadExistingGrant: async (ctx: never) => {
      const c = ctx as { oidc: { client: { clientId: string }; session: { accountId: string }; provider: Provider } };
      const grant = new c.oidc.provider.Grant({ clientId: c.oidc.client.clientId, accountId: c.oidc.session.accountId });
      grant.addOIDCScope('openid email profile groups');
      await grant.save();
      return grant;
    },
    findAccount: async (_ctx: unknown, sub: string) => {
      const u = users.get(sub);
      if (!u) return undefined;
      return { accountId: sub, claims: async () => ({ sub, email: u.email, email_verified: true, name: u.name, groups: [...u.groups] }) };
    },
  } as never);
  provider.proxy = false;

  provider.use(async (ctx, next) => {
    const m = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec(ctx.path);
    if (!m) {
      await next();
      if (ctx.path === '/token' && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
        tokenCalls++;
        const body = ctx.body as { id_token?: string };
        const t = tamper;
        tamper = undefined;
        if (t && body.id_token) {
          const now = Math.floor(Date.now() / 1000);
          if (t === 'wrong-audience') body.id_token = resign(body.id_token, (_h, p) => Object.assign(p, { aud: 'another-client' }), signingKey);
          if (t === 'expired') body.id_token = resign(body.id_token, (_h, p) => Object.assign(p, { iat: now - 7200, exp: now - 3600 }), signingKey);
          if (t === 'nonce') body.id_token = resign(body.id_token, (_h, p) => Object.assign(p, { nonce: 'not-the-nonce' }), signingKey);
          if (t === 'bad-signature') body.id_token = resign(body.id_token, () => {}, rogueKey);
          if (t === 'alg-none') body.id_token = resign(body.id_token, (h) => Object.assign(h, { alg: 'none' }), null);
        }
      }
      return;
    }
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const uid = m[1] as string;
    const form = (error = '') =>
      `<!doctype html><html><body>${error ? `<p class="error">${esc(error)}</p>` : ''}<form method="post" action="/interaction/${esc(uid)}/login">` +
      `<input type="text" name="login" value=""><input type="password" name="password" value=""><button type="submit">Sign in</button></form></body></html>`;
    if (ctx.method === 'GET' && !m[2]) {
      ctx.type = 'html';
      ctx.body = form();
      return;
    }
    if (ctx.method === 'POST' && m[2] && details.prompt.name === 'login') {
      const f = await readForm(ctx.req);
      const u = users.get(f.get('login') ?? '');
      if (!u || u.password !== f.get('password')) {
        ctx.status = 401;
        ctx.type = 'html';
        ctx.body = form('Wrong login or password.');
        return;
      }
      const to = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: f.get('login') as string } }, { mergeWithLastSubmission: false });
      ctx.status = 303;
      ctx.redirect(to);
      return;
    }
    ctx.status = 400;
    ctx.body = 'unexpected interaction step';
  });
  handler = provider.callback() as never;

  return {
    issuer,
    caPem: await readFile(ca.certFile, 'utf8'),
    clientId,
    clientSecret,
    users,
    tamperNext: (t) => {
      tamper = t;
    },
    tokenCalls: () => tokenCalls,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
