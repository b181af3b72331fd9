// A throwaway OpenLDAP directory for the federation tests: Debian's `slapd` started in a temp
// directory with its own slapd.conf (mdb backend, the memberOf overlay), LDAPS and a plain
// listener (for StartTLS and for the "plain LDAP is refused" case), a certificate from a test
// CA, and a small directory: people, a service account, groups with a nested one.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createCertificateAuthority, issueServerCertificate } from './tls.ts';

const run = promisify(execFile);
export const SUFFIX = 'dc=corp,dc=test';
export const ROOT_DN = `cn=admin,${SUFFIX}`;
export const SERVICE_DN = `uid=svc-accord,ou=services,${SUFFIX}`;

export interface TestDirectory {
  /** ldaps://127.0.0.1:port */
  readonly ldapsUrl: string;
  /** ldap://127.0.0.1:port (StartTLS, or nothing) */
  readonly ldapUrl: string;
  readonly caPem: string;
  readonly servicePassword: string;
  /** Applies LDIF changes (ldapmodify as the directory's root). */
  modify(ldif: string): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts slapd with people `users` ({uid: [password, mail, cn]}) and the groups in `ldif`. */
export async function startTestDirectory(opts: { users: Record<string, { password: string; mail: string; cn: string }>; groups: Record<string, string[]> }): Promise<TestDirectory> {
  const dir = await mkdtemp(join(tmpdir(), 'accord-slapd-'));
  const ca = await createCertificateAuthority(dir);
  const cert = await issueServerCertificate(ca, dir, { commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  await mkdir(join(dir, 'data'));
  const rootPw = `root-${Math.random().toString(36).slice(2)}`;
  const servicePassword = `svc-${Math.random().toString(36).slice(2)}`;
  await writeFile(
    join(dir, 'slapd.conf'),
    [
      'include /etc/ldap/schema/core.schema',
      'include /etc/ldap/schema/cosine.schema',
      'include /etc/ldap/schema/inetorgperson.schema',
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      'moduleload memberof',
      `pidfile ${join(dir, 'slapd.pid')}`,
      `TLSCACertificateFile ${ca.certFile}`,
      `TLSCertificateFile ${cert.certFile}`,
      `TLSCertificateKeyFile ${cert.keyFile}`,
      'database mdb',
      `suffix "${SUFFIX}"`,
      `rootdn "${ROOT_DN}"`,
      `rootpw ${rootPw}`,
      `directory ${join(dir, 'data')}`,
      'maxsize 33554432',
      'overlay memberof',
      'memberof-group-oc groupOfNames',
      'memberof-member-ad member',
      'memberof-memberof-ad memberOf',
      'memberof-refint TRUE',
      'access to attrs=userPassword by self =xw by anonymous auth by * none',
      'access to * by users read by * none',
      '',
    ].join('\n'),
  );
  const [ldaps, ldap] = [await freePort(), await freePort()];
  const child: ChildProcess = spawn('slapd', ['-f', join(dir, 'slapd.conf'), '-h', `ldaps://127.0.0.1:${ldaps}/ ldap://127.0.0.1:${ldap}/`, '-d', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d;
  });
  const ldapUrl = `ldap://127.0.0.1:${ldap}`;
  const modify = async (ldif: string, add = false) => {
    const file = join(dir, `change-${Date.now()}-${Math.random()}.ldif`);
    await writeFile(file, ldif);
    await run(add ? 'ldapadd' : 'ldapmodify', ['-x', '-H', ldapUrl, '-D', ROOT_DN, '-w', rootPw, '-f', file]);
  };
  // Wait until it answers (a search on the root DSE).
  for (let i = 0; ; i++) {
    try {
      await run('ldapsearch', ['-x', '-H', ldapUrl, '-b', '', '-s', 'base', 'objectClass=*']);
      break;
    } catch (err) {
      if (i > 100 || child.exitCode !== null) throw new Error(`slapd did not start: ${stderr.slice(-2000)}`, { cause: err });
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const entries = [
    `dn: ${SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Corp\ndc: corp`,
    `dn: ou=people,${SUFFIX}\nobjectClass: organizationalUnit\nou: people`,
    `dn: ou=groups,${SUFFIX}\nobjectClass: organizationalUnit\nou: groups`,
    `dn: ou=services,${SUFFIX}\nobjectClass: organizationalUnit\nou: services`,
    `dn: ${SERVICE_DN}\nobjectClass: inetOrgPerson\nuid: svc-accord\ncn: Accord\nsn: service\nuserPassword: ${servicePassword}`,
    ...Object.entries(opts.users).map(([uid, u]) => `dn: uid=${uid},ou=people,${SUFFIX}\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${u.cn}\nsn: ${u.cn}\nmail: ${u.mail}\nuserPassword: ${u.password}`),
    // Groups in the order given: a group's member groups must exist before it (name them first).
    ...Object.entries(opts.groups).map(([cn, members]) => `dn: cn=${cn},ou=groups,${SUFFIX}\nobjectClass: groupOfNames\ncn: ${cn}\n${(members.length ? members : [`cn=nobody,${SUFFIX}`]).map((m) => `member: ${m}`).join('\n')}`),
  ];
  await modify(`${entries.join('\n\n')}\n`, true);
  return {
    ldapsUrl: `ldaps://127.0.0.1:${ldaps}`,
    ldapUrl,
    caPem: await readFile(ca.certFile, 'utf8'),
    servicePassword,
    modify: (ldif) => modify(ldif),
    stop: async () => {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
