// Throwaway X.509 material for test servers (PostgreSQL, later LDAP/OIDC peers), made with the
// `openssl` CLI so the certificates are produced by the same tool an operator would use.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** PEM files of a certificate and its private key (the key file has mode 0600). */
export interface CertificateFiles {
  certFile: string;
  keyFile: string;
}

/** Options for a server certificate issued by a test CA. */
export interface ServerCertificateOptions {
  /** Subject common name; also added as a DNS subjectAltName. */
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** File name stem inside the directory; default `server`. */
  name?: string;
}

// P-256 keys are generated in milliseconds, RSA-2048 takes visibly longer on a busy CI box.
const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const DAYS = '2';

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(err)}`, { cause: err });
  }
}

/** Creates a self-signed CA (`<name>.crt`/`<name>.key`) in `dir`. */
export async function createCertificateAuthority(
  dir: string,
  opts: { commonName?: string; name?: string } = {},
): Promise<CertificateFiles> {
  const stem = opts.name ?? 'ca';
  const files = { certFile: join(dir, `${stem}.crt`), keyFile: join(dir, `${stem}.key`) };
  // A random suffix keeps two CAs made in one run distinguishable in error messages.
  const cn = opts.commonName ?? `Accord Test CA ${randomBytes(4).toString('hex')}`;
  await openssl([
    'req',
    '-x509',
    ...KEY_ARGS,
    '-keyout',
    files.keyFile,
    '-out',
    files.certFile,
    '-days',
    DAYS,
    '-sha256',
    '-subj',
    `/CN=${cn}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await chmod(files.keyFile, 0o600);
  return files;
}

/** Issues a TLS server certificate signed by `ca`, written to `dir`. */
export async function issueServerCertificate(
  ca: CertificateFiles,
  dir: string,
  opts: ServerCertificateOptions,
): Promise<CertificateFiles> {
  const stem = opts.name ?? 'server';
  const files = { certFile: join(dir, `${stem}.crt`), keyFile: join(dir, `${stem}.key`) };
  const csrFile = join(dir, `${stem}.csr`);
  const extFile = join(dir, `${stem}.ext`);
  const dns = [opts.commonName, ...(opts.dnsNames ?? [])];
  const san = [...new Set(dns)].map((d) => `DNS:${d}`).concat((opts.ipAddresses ?? []).map((ip) => `IP:${ip}`));
  await openssl(['req', '-new', ...KEY_ARGS, '-keyout', files.keyFile, '-out', csrFile, '-subj', `/CN=${opts.commonName}`]);
  await writeFile(
    extFile,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${san.join(',')}`,
      '',
    ].join('\n'),
  );
  await openssl([
    'x509',
    '-req',
    '-in',
    csrFile,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-days',
    DAYS,
    '-sha256',
    '-extfile',
    extFile,
    '-out',
    files.certFile,
  ]);
  await chmod(files.keyFile, 0o600);
  return files;
}
