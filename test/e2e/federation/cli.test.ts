// The federation walkthrough through the CLI against `accord start` (PGlite; the CLI opens no
// database, and the API behind each command runs on both engines in the other suites here):
// `accord idp add|list|test|map|resync|builtin-sign-in|remove` with secrets from files, a broken
// provider reported by `idp test` with its reason and exit 1, and a real browser sign-in through
// the OpenID provider to the production stage over the server's HTTPS.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Browser } from '../../harness/browser.ts';
import { cli, EMAIL, fails, ok, PASSWORD, type Ready, ServerProcess } from '../../harness/cli.ts';
import { startTestOp, type TestOp } from '../../harness/oidc-provider.ts';
import { startTestSamlIdp } from '../../harness/saml-idp.ts';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe('identity providers through the CLI', { concurrency: false }, () => {
  let dir: string;
  let server: ServerProcess;
  let ready: Ready;
  let op: TestOp;
  let origin = '';
  const config = { ops: '', admin: '' };
  const as = (who: keyof typeof config, ...args: string[]) => cli(args, { ACCORD_CONFIG_DIR: config[who] });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'accord-idp-cli-'));
    for (const who of Object.keys(config) as (keyof typeof config)[]) {
      config[who] = join(dir, `config-${who}`);
      await mkdir(config[who], { mode: 0o700 });
    }
    const port = await freePort();
    origin = `https://localhost:${port}`;
    op = await startTestOp({
      redirectUris: [`${origin}/api/v1/federation/acme/corp/oidc/callback`],
      users: { erin: { password: 'erin at the idp', email: 'erin@corp.test', name: 'Erin', groups: ['expense-users'] } },
    });
    await writeFile(join(dir, 'ops.pw'), `${PASSWORD}\n`);
    await writeFile(join(dir, 'admin.pw'), 'orchard lemon tree grove\n');
    await writeFile(join(dir, 'corp.secret'), `${op.clientSecret}\n`);
    await writeFile(join(dir, 'op-ca.pem'), op.caPem);
    server = ServerProcess.spawn(['--data-dir', join(dir, 'data'), '--port', String(port), '--public-url', origin], {});
    ready = await server.ready();
    ok(await as('ops', 'setup', '--url', ready.url, '--ca-file', ready.caFile, '--token', ready.setup.token ?? '', '--email', EMAIL, '--password-file', join(dir, 'ops.pw'), '--json'));
    ok(await as('ops', 'login', '--url', ready.url, '--ca-file', ready.caFile, '--email', EMAIL, '--password-file', join(dir, 'ops.pw'), '--json'));
    ok(await as('ops', 'tenant', 'create', 'acme', '--json'));
    ok(await as('ops', 'user', 'create', 'admin@acme.test', '--tenant', 'acme', '--password-file', join(dir, 'admin.pw'), '--json'));
    ok(await as('ops', 'role', 'grant', 'tenant-admin', '--tenant', 'acme', '--user', 'admin@acme.test', '--json'));
    ok(await as('admin', 'login', '--url', ready.url, '--ca-file', ready.caFile, '--email', 'admin@acme.test', '--password-file', join(dir, 'admin.pw'), '--json'));
  });
  after(async () => {
    await server?.kill();
    await op?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('idp add oidc reads the secret from a file and never prints it; idp list shows where it is attached', async () => {
    const r = await as('admin', 'idp', 'add', 'oidc', 'corp', '--tenant', 'acme', '--issuer', op.issuer, '--client-id', op.clientId, '--client-secret-file', join(dir, 'corp.secret'),
      '--scope', 'openid', '--scope', 'email', '--scope', 'profile', '--scope', 'groups', '--userinfo', '--ca-file', join(dir, 'op-ca.pem'), '--console', '--stage', 'production', '--json');
    const added = ok<{ name: string; secretSet: boolean; stages: string[] }>(r);
    assert.equal(added.secretSet, true);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(op.clientSecret));
    const human = await as('admin', 'idp', 'list', '--tenant', 'acme');
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /corp\s+oidc\s+true\s+console, stage production\s+set/);
  });

  test('idp test succeeds for the working provider and exits 1 with the reason for a broken one', async () => {
    const good = await as('admin', 'idp', 'test', 'corp', '--tenant', 'acme');
    assert.equal(good.code, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /works/);
    await writeFile(join(dir, 'x.secret'), 'x');
    ok(await as('admin', 'idp', 'add', 'oidc', 'gone', '--tenant', 'acme', '--issuer', 'https://127.0.0.1:1', '--client-id', 'x', '--client-secret-file', join(dir, 'x.secret'), '--json'));
    const bad = await as('admin', 'idp', 'test', 'gone', '--tenant', 'acme');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr + bad.stdout, /discovery/);
    const err = fails(await as('admin', 'idp', 'test', 'gone', '--tenant', 'acme', '--json'), 'IAM_IDP_INVALID');
    assert.equal(err.details?.reason, 'discovery');
    fails(await as('admin', 'idp', 'add', 'oidc', 'plain', '--tenant', 'acme', '--issuer', 'http://idp.test', '--client-id', 'x', '--client-secret-file', join(dir, 'x.secret'), '--json'), 'IAM_IDP_INVALID');
    ok(await as('admin', 'idp', 'remove', 'gone', '--tenant', 'acme', '--json'));
  });

  test('a mapped group gives the IdP-only user the app role Employee on production after a real browser sign-in', async () => {
    ok(await as('admin', 'idp', 'map', 'corp', '--tenant', 'acme', '--group', 'expense-users', '--app', 'expenses', '--app-role', 'Employee', '--stage', 'production', '--json'));
    const ca = await readFile(ready.caFile, 'utf8');
    const b = new Browser({ origin, ca: [ca, op.caPem] });
    let page = await b.go(`${origin}/t/acme/production/auth/idp/corp/login?mode=bearer`);
    page = await b.submit(page, { login: 'erin', password: 'erin at the idp' });
    assert.equal(page.status, 200, page.body);
    const token = JSON.parse(page.body).accessToken as string;
    const me = await new Promise<string>((resolve, reject) => {
      import('node:https').then(({ request }) => {
        const req = request(`${origin}/t/acme/production/auth/me`, { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
          let t = '';
          res.on('data', (c) => {
            t += c;
          });
          res.on('end', () => resolve(t));
        });
        req.on('error', reject);
        req.end();
      }, reject);
    });
    assert.deepEqual(JSON.parse(me).appRoles, [{ app: 'expenses', role: 'Employee' }]);
    const resync = ok<{ user: string }[]>(await as('admin', 'idp', 'resync', 'corp', '--tenant', 'acme', '--json'));
    assert.equal(resync.length, 1);
  });

  test('idp add saml reads the IdP metadata file; idp test passes; a real browser signs in to production through the POST binding', async () => {
    const saml = await startTestSamlIdp({ users: { sam: { password: 'sam at the idp', email: 'sam@corp.test', name: 'Sam', groups: ['expense-users'] } } });
    try {
      await writeFile(join(dir, 'idp-metadata.xml'), saml.metadata);
      await writeFile(join(dir, 'no-sso.xml'), saml.metadata.replace(/<[^>]*SingleSignOnService\b[^>]*>/g, ''));
      fails(await as('admin', 'idp', 'add', 'saml', 'broken', '--tenant', 'acme', '--metadata-file', join(dir, 'no-sso.xml'), '--json'), 'CLI_USAGE');
      fails(await as('admin', 'idp', 'add', 'saml', 'broken', '--tenant', 'acme', '--entity-id', saml.entityId, '--json'), 'CLI_USAGE');
      const added = ok<{ kind: string; settings: { entryPoint: string; idpIssuer: string } }>(await as('admin', 'idp', 'add', 'saml', 'corp-saml', '--tenant', 'acme', '--metadata-file', join(dir, 'idp-metadata.xml'), '--stage', 'production', '--json'));
      assert.equal(added.kind, 'saml');
      assert.equal(added.settings.entryPoint, saml.ssoUrl);
      assert.equal(added.settings.idpIssuer, saml.entityId);
      const tested = await as('admin', 'idp', 'test', 'corp-saml', '--tenant', 'acme');
      assert.equal(tested.code, 0, tested.stdout + tested.stderr);
      ok(await as('admin', 'idp', 'map', 'corp-saml', '--tenant', 'acme', '--group', 'expense-users', '--app', 'expenses', '--app-role', 'Employee', '--stage', 'production', '--json'));
      const ca = await readFile(ready.caFile, 'utf8');
      const b = new Browser({ origin, ca: [ca, saml.caPem] });
      const meta = await b.go(`${origin}/api/v1/federation/acme/corp-saml/saml/metadata`);
      assert.equal(meta.status, 200, meta.body);
      saml.registerSp(meta.body);
      let page = await b.go(`${origin}/t/acme/production/auth/idp/corp-saml/login?mode=bearer`);
      page = await b.submit(page, { login: 'sam', password: 'sam at the idp' });
      page = await b.submit(page, {});
      assert.equal(page.status, 200, page.body);
      assert.equal(typeof JSON.parse(page.body).accessToken, 'string');
      ok(await as('admin', 'idp', 'remove', 'corp-saml', '--tenant', 'acme', '--json'));
    } finally {
      await saml.stop();
    }
  });

  test('idp builtin-sign-in turns password sign-in off and on; idp remove takes the mappings and their grants', async () => {
    ok(await as('admin', 'idp', 'builtin-sign-in', 'off', '--tenant', 'acme', '--stage', 'production', '--json'));
    fails(await as('admin', 'idp', 'builtin-sign-in', 'off', '--tenant', 'acme', '--stage', 'development', '--json'), 'IAM_BUILTIN_SIGN_IN_DISABLED');
    fails(await as('admin', 'idp', 'builtin-sign-in', 'maybe', '--tenant', 'acme', '--json'), 'CLI_USAGE');
    ok(await as('admin', 'idp', 'builtin-sign-in', 'on', '--tenant', 'acme', '--stage', 'production', '--json'));
    ok(await as('admin', 'idp', 'remove', 'corp', '--tenant', 'acme', '--json'));
    const list = ok<unknown[]>(await as('admin', 'idp', 'list', '--tenant', 'acme', '--json'));
    assert.deepEqual(list, []);
  });
});
