// A real SAML identity provider for the federation tests: samlify acting as the IdP, on
// loopback over HTTPS with a throwaway CA, behind a real login form (password checked). It reads
// the SP's HTTP-Redirect AuthnRequest, answers with a signed assertion through the HTTP-POST
// binding (an auto-submit form the browser helper posts to the ACS), with the users' email,
// name and groups as attributes. A tamper switch changes the next response the way a hostile
// party would (strip the signature, wrap a forged assertion, expire it, address another SP).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import * as samlifyNs from 'samlify';
import { createCertificateAuthority, issueServerCertificate } from './tls.ts';

export interface SamlUser {
  password: string;
  email: string;
  name: string;
  groups: string[];
}

export type SamlTamper = 'unsigned' | 'wrapped' | 'expired' | 'wrong-audience';

export interface TestSamlIdp {
  readonly entityId: string;
  readonly ssoUrl: string;
  /** PEM of the certificate the IdP signs assertions with. */
  readonly signingCertPem: string;
  /** PEM of the CA of the IdP's TLS certificate (the browser trusts it). */
  readonly caPem: string;
  /** IdP metadata XML (entity id, SSO URL with the redirect binding, signing certificate). */
  readonly metadata: string;
  readonly users: Map<string, SamlUser>;
  /** Makes the SP known to the IdP, from the SP's metadata XML. */
  registerSp(metadataXml: string): void;
  tamperNext(t: SamlTamper | undefined): void;
  stop(): Promise<void>;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';

// The IdP side does not schema-validate the SP's requests here: the SP under test is the one
// whose checks matter, and samlify's XSD validators are separate native or Java packages.
// Some of samlify's exports are getters Node's CommonJS interop does not see as named exports.
const samlify = ((samlifyNs as unknown as { default?: typeof samlifyNs }).default ?? samlifyNs) as typeof samlifyNs;

samlify.setSchemaValidator({ validate: async () => 'skipped' });

async function readForm(req: NodeJS.ReadableStream): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function attributeStatement(u: SamlUser): string {
  const attr = (name: string, values: string[]) =>
    `<saml:Attribute Name="${esc(name)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">${values.map((v) => `<saml:AttributeValue xsi:type="xs:string">${esc(v)}</saml:AttributeValue>`).join('')}</saml:Attribute>`;
  return `<saml:AttributeStatement>${attr('email', [u.email])}${attr('name', [u.name])}${u.groups.length ? attr('groups', u.groups) : ''}</saml:AttributeStatement>`;
}

/** Starts the IdP; users by login name (change their groups between sign-ins to test re-sync). */
export async function startTestSamlIdp(opts: { users: Record<string, SamlUser> }): Promise<TestSamlIdp> {
  const dir = await mkdtemp(join(tmpdir(), 'accord-saml-idp-'));
  const ca = await createCertificateAuthority(dir);
  const tlsCert = await issueServerCertificate(ca, dir, { commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  // XML signatures here are RSA (what SAML deployments use); the TLS certificates are EC.
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'sign.key'), '-out', join(dir, 'sign.crt'), '-days', '2', '-subj', '/CN=Accord Test SAML IdP']);
  const signingCertPem = await readFile(join(dir, 'sign.crt'), 'utf8');
  const signingKeyPem = await readFile(join(dir, 'sign.key'), 'utf8');
  const users = new Map(Object.entries(opts.users));
  const sps = new Map<string, { sp: samlifyNs.ServiceProviderInstance; acs: string }>();
  let tamper: SamlTamper | undefined;
  let idp: samlifyNs.IdentityProviderInstance | undefined;

  const server: Server = createServer({ cert: await readFile(tlsCert.certFile), key: await readFile(tlsCert.keyFile) }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.statusCode = 500;
      res.end(String((err as Error)?.message ?? err));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `https://localhost:${(server.address() as AddressInfo).port}`;
  const entityId = `${origin}/metadata`;
  const ssoUrl = `${origin}/sso`;
  idp = samlify.IdentityProvider({
    entityID: entityId,
    privateKey: signingKeyPem,
    signingCert: signingCertPem,
    wantAuthnRequestsSigned: false,
    singleSignOnService: [{ Binding: REDIRECT, Location: ssoUrl }],
    nameIDFormat: ['urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified'],
  });

  const page = (res: import('node:http').ServerResponse, html: string) => {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(`<!doctype html><html><body>${html}</body></html>`);
  };

  async function handle(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) {
    const url = new URL(req.url ?? '/', origin);
    if (url.pathname === '/metadata') return void res.end(idp?.getMetadata());
    if (url.pathname !== '/sso') {
      res.statusCode = 404;
      return void res.end();
    }
    if (req.method === 'GET') {
      const q = url.searchParams;
      return page(
        res,
        `<form method="post" action="/sso"><input type="hidden" name="SAMLRequest" value="${esc(q.get('SAMLRequest') ?? '')}"><input type="hidden" name="RelayState" value="${esc(q.get('RelayState') ?? '')}"><input name="login" value=""><input type="password" name="password" value=""><button>Sign in</button></form>`,
      );
    }
    const form = await readForm(req);
    const user = users.get(form.get('login') ?? '');
    if (!user || user.password !== form.get('password')) {
      res.statusCode = 401;
      return page(res, '<p>Wrong login or password.</p>');
    }
    const request = form.get('SAMLRequest') ?? '';
    const xml = inflateRawSync(Buffer.from(request, 'base64')).toString('utf8');
    const spEntity = /<(?:\w+:)?Issuer[^>]*>([^<]+)</.exec(xml)?.[1] ?? '';
    const known = sps.get(spEntity);
    if (!known || !idp) {
      res.statusCode = 400;
      return page(res, `<p>Unknown service provider ${esc(spEntity)}</p>`);
    }
    const { sp, acs } = known;
    const info = await idp.parseLoginRequest(sp, 'redirect', { query: { SAMLRequest: request, ...(form.get('RelayState') ? { RelayState: form.get('RelayState') as string } : {}) }, octetString: '' } as never);
    const requestId = String((info.extract as { request?: { id?: string } }).request?.id ?? '');
    const t = tamper;
    tamper = undefined;
    const now = new Date();
    const at = (ms: number) => new Date(now.getTime() + ms).toISOString();
    const id = `_${randomBytes(16).toString('hex')}`;
    const assertionId = `_${randomBytes(16).toString('hex')}`;
    const values = {
      ID: id,
      AssertionID: assertionId,
      Destination: acs,
      Audience: t === 'wrong-audience' ? 'https://another-sp.example.test/metadata' : spEntity,
      SubjectRecipient: acs,
      Issuer: entityId,
      IssueInstant: t === 'expired' ? at(-3600_000) : now.toISOString(),
      StatusCode: 'urn:oasis:names:tc:SAML:2.0:status:Success',
      ConditionsNotBefore: t === 'expired' ? at(-3600_000) : at(-5_000),
      ConditionsNotOnOrAfter: t === 'expired' ? at(-600_000) : at(300_000),
      SubjectConfirmationDataNotOnOrAfter: t === 'expired' ? at(-600_000) : at(300_000),
      NameIDFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
      NameID: `id-${form.get('login')}`,
      InResponseTo: requestId,
    };
    // replaceTagsByValue escapes what it inserts: the two XML fragments go in as they are.
    const fragments = {
      AuthnStatement: `<saml:AuthnStatement AuthnInstant="${now.toISOString()}" SessionIndex="${id}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`,
      AttributeStatement: attributeStatement(user),
    };
    const made = (await idp.createLoginResponse(sp, info as never, 'post', { email: user.email }, (template: string) => ({ id, context: samlify.SamlLib.replaceTagsByValue(template.replace('{AuthnStatement}', fragments.AuthnStatement).replace('{AttributeStatement}', fragments.AttributeStatement), values) }))) as { context: string };
    let responseXml = Buffer.from(made.context, 'base64').toString('utf8');
    if (t === 'unsigned') responseXml = responseXml.replace(/<ds:Signature\b[\s\S]*?<\/ds:Signature>/, '');
    if (t === 'wrapped') {
      // XSW: a forged, unsigned assertion for another identity placed before the signed one,
      // which stays intact (its signature still verifies) but is not the one a naive SP reads.
      const signed = /<saml:Assertion\b[\s\S]*<\/saml:Assertion>/.exec(responseXml)?.[0] ?? '';
      const forged = signed
        .replace(/<ds:Signature\b[\s\S]*?<\/ds:Signature>/, '')
        .replace(/ID="[^"]+"/, `ID="_forged${randomBytes(8).toString('hex')}"`)
        .replace(/<saml:NameID([^>]*)>[^<]*</, '<saml:NameID$1>id-mallory<')
        .replace(esc(user.email), 'mallory@corp.test');
      responseXml = responseXml.replace(signed, forged + signed);
    }
    return page(
      res,
      `<form method="post" action="${esc(acs)}"><input type="hidden" name="SAMLResponse" value="${esc(Buffer.from(responseXml, 'utf8').toString('base64'))}"><input type="hidden" name="RelayState" value="${esc(form.get('RelayState') ?? '')}"><noscript><button>Continue</button></noscript></form>`,
    );
  }

  return {
    entityId,
    ssoUrl,
    signingCertPem,
    caPem: await readFile(ca.certFile, 'utf8'),
    metadata: idp.getMetadata(),
    users,
    registerSp(metadataXml: string) {
      const sp = samlify.ServiceProvider({ metadata: metadataXml });
      // The ACS to post to, with the POST binding, as the SP's metadata names it.
      const acs = /<(?:\w+:)?AssertionConsumerService\b[^>]*\bBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"[^>]*\bLocation="([^"]+)"/.exec(metadataXml)?.[1];
      if (!acs) throw new Error('SP metadata names no ACS with the HTTP-POST binding');
      sps.set(sp.entityMeta.getEntityID(), { sp, acs });
    },
    tamperNext(t) {
      tamper = t;
    },
    async stop() {
      await new Promise<void>((r) => server.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
