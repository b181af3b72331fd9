import type { Command } from 'commander';
import { apiClient } from './client.ts';
import { action, sessionClient, withJson } from './command.ts';
import { cliError } from './output.ts';
import { loadProfile, readArgFile } from './profile.ts';

const seg = encodeURIComponent;

interface ProfileOut {
  id: string;
  email: string;
  displayName: string;
  tenant: string | null;
  status: string;
  createdAt: string;
  passwordChangedAt: string | null;
  mfa: string[];
}

/** A server for commands run without a session (accepting an invitation, a reset): URL and CA from flags, else the saved profile's CA for the same URL. */
function serverOf(opts: { url: string; caFile?: string }): { url: string; ca?: string } {
  if (opts.caFile) return { url: opts.url, ca: readArgFile(opts.caFile, '--ca-file') };
  const saved = loadProfile();
  return saved?.ca && saved.url === opts.url ? { url: opts.url, ca: saved.ca } : { url: opts.url };
}

// A server with its own CA: the person needs that CA too (the file `accord start` printed).
const caHint = (ca: string | undefined): string => (ca ? ' --ca-file CA_FILE' : '');

const profileText = (p: ProfileOut): string =>
  [
    `email           ${p.email}`,
    `display name    ${p.displayName || '(none)'}`,
    `directory       ${p.tenant ?? '(platform)'}`,
    `status          ${p.status}`,
    `created         ${p.createdAt}`,
    `password set    ${p.passwordChangedAt ?? '(not recorded)'}`,
    `MFA             ${p.mfa.length > 0 ? p.mfa.join(', ') : '(none)'}`,
  ].join('\n');

/**
 * `accord user invite|reset-password` (added to the `user` command), `accord invitation accept`,
 * `accord password change|reset`, `accord profile show|set`.
 */
export function registerAccountCommands(program: Command): void {
  const user = program.commands.find((c) => c.name() === 'user');
  if (!user) throw new Error('registerAccountCommands needs the `user` command: call registerUserCommands first.');

  withJson(
    user
      .command('invite <email>')
      .description('invite a person into a tenant; prints a one-time token (valid 7 days) to hand over yourself')
      .requiredOption('--tenant <name>', 'tenant')
      .option('--display-name <text>', 'display name'),
  ).action(
    action(async (out, email: string, opts: { tenant: string; displayName?: string }) => {
      const { client, profile } = sessionClient();
      const r = await client.call<{ email: string; inviteToken: string; expiresAt: string }>('POST', `/api/v1/tenants/${seg(opts.tenant)}/invitations`, {
        email,
        ...(opts.displayName === undefined ? {} : { displayName: opts.displayName }),
      });
      out.result(
        r,
        (v: typeof r) =>
          `Invited ${v.email} to ${opts.tenant}. Hand this one-time token to them over a channel you trust (it is not shown again; valid until ${v.expiresAt}):\n\n  ${v.inviteToken}\n\nThey accept with: accord invitation accept --url ${profile.url}${caHint(profile.ca)} --token TOKEN --password-file FILE`,
      );
    }),
  );

  withJson(
    user
      .command('reset-password <email>')
      .description("start a password reset for a user; prints a one-time token (valid 30 minutes) to hand over yourself")
      .requiredOption('--tenant <name>', 'tenant'),
  ).action(
    action(async (out, email: string, opts: { tenant: string }) => {
      const { client, profile } = sessionClient();
      const r = await client.call<{ email: string; resetToken: string; expiresAt: string }>('POST', `/api/v1/tenants/${seg(opts.tenant)}/users/${seg(email)}/password-reset`);
      out.result(
        r,
        (v: typeof r) =>
          `Password reset started for ${v.email}. Hand this one-time token to them over a channel you trust (it is not shown again; valid until ${v.expiresAt}):\n\n  ${v.resetToken}\n\nThey set a new password with: accord password reset --url ${profile.url}${caHint(profile.ca)} --token TOKEN --password-file FILE`,
      );
    }),
  );

  const invitation = program.command('invitation').description('invitations to join a tenant');
  withJson(
    invitation
      .command('accept')
      .description('accept an invitation by choosing your password (no sign-in needed); then run `accord login`')
      .requiredOption('--url <url>', 'platform URL, e.g. https://accord.example.com')
      .option('--ca-file <file>', 'CA certificate to trust (default: the saved profile for the same URL, else the system store)')
      .requiredOption('--token <token>', 'the invitation token you were given')
      .requiredOption('--password-file <file>', 'file holding the password you choose (12+ characters)'),
  ).action(
    action(async (out, opts: { url: string; caFile?: string; token: string; passwordFile: string }) => {
      const password = readArgFile(opts.passwordFile, '--password-file', { trimNewline: true });
      const r = await apiClient(serverOf(opts)).call<{ userId: string; email: string; tenant: string | null }>('POST', '/api/v1/auth/invitation', { token: opts.token, password });
      const ca = opts.caFile ? ` --ca-file ${opts.caFile}` : '';
      out.result(
        r,
        (v: typeof r) => `Welcome, ${v.email}: your account${v.tenant ? ` in ${v.tenant}` : ''} is active. Next: accord login --url ${opts.url}${ca} --email ${v.email} --password-file FILE`,
      );
    }),
  );

  const password = program.command('password').description('your password');
  withJson(
    password
      .command('change')
      .description('change your password; your other sessions end, this one stays')
      .requiredOption('--current-file <file>', 'file holding your current password')
      .requiredOption('--new-file <file>', 'file holding the new password (12+ characters)'),
  ).action(
    action(async (out, opts: { currentFile: string; newFile: string }) => {
      const currentPassword = readArgFile(opts.currentFile, '--current-file', { trimNewline: true });
      const newPassword = readArgFile(opts.newFile, '--new-file', { trimNewline: true });
      const { client } = sessionClient();
      const r = await client.call<{ passwordChangedAt: string; otherSessionsRevoked: number }>('POST', '/api/v1/me/password', { currentPassword, newPassword });
      out.result(r, (v: typeof r) => `Password changed. ${v.otherSessionsRevoked} other session${v.otherSessionsRevoked === 1 ? '' : 's'} ended.`);
    }),
  );
  withJson(
    password
      .command('reset')
      .description('set a new password with a reset token from your admin (no sign-in needed); all your sessions end')
      .requiredOption('--url <url>', 'platform URL')
      .option('--ca-file <file>', 'CA certificate to trust (default: the saved profile for the same URL, else the system store)')
      .requiredOption('--token <token>', 'the reset token you were given')
      .requiredOption('--password-file <file>', 'file holding the new password (12+ characters)'),
  ).action(
    action(async (out, opts: { url: string; caFile?: string; token: string; passwordFile: string }) => {
      const newPassword = readArgFile(opts.passwordFile, '--password-file', { trimNewline: true });
      const r = await apiClient(serverOf(opts)).call<{ userId: string; email: string; tenant: string | null; sessionsRevoked: number }>('POST', '/api/v1/auth/password-reset', {
        token: opts.token,
        password: newPassword,
      });
      const ca = opts.caFile ? ` --ca-file ${opts.caFile}` : '';
      out.result(r, (v: typeof r) => `Password set for ${v.email}; ${v.sessionsRevoked} session${v.sessionsRevoked === 1 ? '' : 's'} ended. Next: accord login --url ${opts.url}${ca} --email ${v.email} --password-file FILE`);
    }),
  );

  const profile = program.command('profile').description('your own account');
  withJson(profile.command('show').description('your email, display name, directory, status, password date and MFA factors')).action(
    action(async (out) => {
      const { client } = sessionClient();
      out.result(await client.call<ProfileOut>('GET', '/api/v1/me'), profileText);
    }),
  );
  withJson(profile.command('set').description('change your display name').option('--display-name <text>', 'the new display name (up to 100 characters; "" clears it)')).action(
    action(async (out, opts: { displayName?: string }) => {
      if (opts.displayName === undefined) throw cliError('CLI_USAGE', 'Nothing to set: give --display-name.');
      const { client } = sessionClient();
      out.result(await client.call<ProfileOut>('PATCH', '/api/v1/me', { displayName: opts.displayName }), profileText);
    }),
  );
}
