import type { Command } from 'commander';
import { apiClient } from './client.ts';
import { action, type SignInAnswer, saveSession, sessionClient, withJson } from './command.ts';
import { cliError } from './output.ts';
import { loadProfile, readArgFile, removeProfile } from './profile.ts';

interface ServerOptions {
  url?: string;
  caFile?: string;
}

/** URL and CA from flags, else from the saved profile (same URL only: a CA is per server). */
function server(opts: ServerOptions): { url: string; ca?: string; deviceToken?: string } {
  const saved = loadProfile();
  const url = opts.url ?? saved?.url;
  if (!url) throw cliError('CLI_USAGE', 'Give --url (no saved profile to take it from).');
  // The device token of an earlier sign-in to this server goes along (see docs/iam.md).
  const device = saved?.deviceToken && saved.url === url ? { deviceToken: saved.deviceToken } : {};
  if (opts.caFile) return { url, ca: readArgFile(opts.caFile, '--ca-file'), ...device };
  if (saved?.ca && saved.url === url) return { url, ca: saved.ca, ...device };
  return { url, ...device };
}

/** `accord setup`, `accord login`, `accord logout`. */
export function registerSessionCommands(program: Command): void {
  withJson(
    program
      .command('setup')
      .description('create the first platform operator with the one-time setup token printed by `accord start`')
      .requiredOption('--url <url>', 'platform URL, e.g. https://localhost:8443')
      .option('--ca-file <file>', 'CA certificate to trust (printed by `accord start`)')
      .requiredOption('--token <token>', 'the one-time setup token')
      .requiredOption('--email <email>', 'email of the operator to create')
      .requiredOption('--password-file <file>', 'file holding the new password (12+ characters)'),
  ).action(
    action(async (out, opts: ServerOptions & { token: string; email: string; passwordFile: string }) => {
      const password = readArgFile(opts.passwordFile, '--password-file', { trimNewline: true });
      const client = apiClient(server(opts));
      const res = await client.call<{ userId: string; email: string }>('POST', '/api/v1/setup', {
        token: opts.token,
        email: opts.email,
        password,
      });
      const ca = opts.caFile ? ` --ca-file ${opts.caFile}` : '';
      out.result(res, (r: { email: string }) => `Operator ${r.email} created. Next: accord login --url ${opts.url}${ca} --email ${r.email} --password-file FILE`);
    }),
  );

  withJson(
    program
      .command('login')
      .description('sign in and save the session (URL, CA, tokens) under ACCORD_CONFIG_DIR, mode 0600')
      .option('--url <url>', 'platform URL (default: the saved profile)')
      .option('--ca-file <file>', 'CA certificate to trust (default: the saved profile)')
      .requiredOption('--email <email>', 'your email')
      .requiredOption('--password-file <file>', 'file holding your password')
      .option('--tenant <name>', 'the tenant to sign in to, when your email exists in several')
      .option('--totp <code>', 'the 6-digit code of your authenticator app, when MFA is enrolled')
      .option('--recovery-code <code>', 'one of your recovery codes, instead of --totp'),
  ).action(
    action(async (out, opts: ServerOptions & { email: string; passwordFile: string; tenant?: string; totp?: string; recoveryCode?: string }) => {
      const password = readArgFile(opts.passwordFile, '--password-file', { trimNewline: true });
      const target = server(opts);
      const api = apiClient(target);
      let res = await api.call<SignInAnswer>('POST', '/api/v1/auth/login', { email: opts.email, password, ...(opts.tenant ? { tenant: opts.tenant } : {}) });
      if (res.status === 'mfa-required') {
        if (!opts.totp && !opts.recoveryCode) {
          throw cliError('CLI_USAGE', `MFA is enrolled for ${res.user.email}: run again with --totp CODE (or --recovery-code CODE).`, { methods: res.methods });
        }
        res = await api.call<SignInAnswer>('POST', '/api/v1/auth/mfa', {
          mfaToken: res.mfaToken,
          ...(opts.totp ? { totp: opts.totp } : { recoveryCode: opts.recoveryCode }),
        });
      }
      saveSession(target, res);
      const enrol = res.status === 'mfa-enrolment-required';
      out.result(
        { url: target.url, email: res.user.email, userId: res.user.id, status: res.status, expiresAt: res.accessExpiresAt, sessionExpiresAt: res.sessionExpiresAt },
        (r: { email: string; url: string }) =>
          enrol
            ? `Signed in to ${r.url} as ${r.email}, but your tenant requires MFA: run \`accord mfa enroll\`, then \`accord mfa confirm --code CODE\`.`
            : `Logged in to ${r.url} as ${r.email}.`,
      );
    }),
  );

  withJson(program.command('logout').description('end the session on the server and forget it locally')).action(
    action(async (out) => {
      const { client } = sessionClient();
      try {
        await client.call('POST', '/api/v1/auth/logout');
      } finally {
        // Forget the token even if the server already considers it ended.
        removeProfile();
      }
      out.result({ loggedOut: true }, () => 'Logged out.');
    }),
  );
}
