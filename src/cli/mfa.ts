import type { Command } from 'commander';
import { action, type SignInAnswer, sessionClient, withJson } from './command.ts';
import { table } from './output.ts';
import { loadProfile, type Profile, saveProfile } from './profile.ts';

const seg = encodeURIComponent;

interface Passkey {
  id: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
  transports: string[];
}

interface MfaStatus {
  required: boolean;
  methods: string[];
  totp: { enrolled: boolean; confirmed: boolean; confirmedAt: string | null };
  passkeys: Passkey[];
  recoveryCodesLeft: number;
}

interface Enrolment {
  secret: string;
  otpauthUri: string;
  recoveryCodes: string[];
}

const codeOption = '--code <code>';
const codeHelp = 'a current code of your authenticator app, or one of your recovery codes';

/**
 * After the first factor is confirmed from an enrolment-only session, the server ends that
 * session and answers with a full one: keep it, so the next command works.
 */
function keepSession(base: Profile, s: SignInAnswer): void {
  const { enrolmentOnly: _dropped, ...rest } = loadProfile() ?? base;
  saveProfile({
    ...rest,
    ...(s.accessToken ? { token: s.accessToken } : {}),
    ...(s.refreshToken ? { refreshToken: s.refreshToken } : {}),
    ...(s.accessExpiresAt ? { expiresAt: s.accessExpiresAt } : {}),
    ...(s.sessionExpiresAt ? { sessionExpiresAt: s.sessionExpiresAt } : {}),
  });
}

/** `accord mfa ...`: your own second factors (TOTP, recovery codes, passkeys). */
export function registerMfaCommands(program: Command): void {
  const mfa = program
    .command('mfa')
    .description('your second factors: TOTP authenticator app, recovery codes, passkeys (passkeys are registered in a browser)');

  withJson(mfa.command('status').description('which factors you have, recovery codes left, whether MFA is required of you')).action(
    action(async (out) => {
      const { client } = sessionClient();
      const s = await client.call<MfaStatus>('GET', '/api/v1/mfa');
      out.result(s, (v: MfaStatus) =>
        [
          `MFA required: ${v.required ? 'yes' : 'no'}`,
          `TOTP: ${v.totp.confirmed ? `confirmed ${v.totp.confirmedAt}` : v.totp.enrolled ? 'enrolled, not confirmed (run `accord mfa confirm --code CODE`)' : 'not enrolled'}`,
          `Passkeys: ${v.passkeys.length}`,
          `Recovery codes left: ${v.recoveryCodesLeft}`,
        ].join('\n'),
      );
    }),
  );

  withJson(
    mfa
      .command('enroll')
      .description('start a TOTP enrolment: prints the otpauth:// URI, the secret and 10 recovery codes (shown once; they work after `mfa confirm`)'),
  ).action(
    action(async (out) => {
      const { client } = sessionClient();
      const e = await client.call<Enrolment>('POST', '/api/v1/mfa/totp');
      out.result(e, (v: Enrolment) =>
        [
          'Add this to your authenticator app (scan the URI as a QR code, or type the secret):',
          `  ${v.otpauthUri}`,
          `  secret: ${v.secret}`,
          '',
          'Recovery codes (each works once; store them somewhere safe, they are not shown again):',
          ...v.recoveryCodes.map((c) => `  ${c}`),
          '',
          'Then confirm with the code your app shows: accord mfa confirm --code CODE',
        ].join('\n'),
      );
    }),
  );

  withJson(mfa.command('confirm').description('confirm the TOTP enrolment with a code from your app').requiredOption(codeOption, 'the 6-digit code your app shows')).action(
    action(async (out, opts: { code: string }) => {
      const { client, profile } = sessionClient();
      const r = await client.call<SignInAnswer | { confirmed: true }>('POST', '/api/v1/mfa/totp/confirm', { code: opts.code });
      const upgraded = 'status' in r && r.accessToken !== undefined;
      if (upgraded) keepSession(profile, r);
      out.result({ confirmed: true, sessionRenewed: upgraded }, () =>
        upgraded ? 'TOTP confirmed. Your session now has full access (saved).' : 'TOTP confirmed: sign-ins now ask for a code.',
      );
    }),
  );

  withJson(mfa.command('disable').description('remove your TOTP (needs a current code or a recovery code)').requiredOption(codeOption, codeHelp)).action(
    action(async (out, opts: { code: string }) => {
      const { client } = sessionClient();
      await client.call('DELETE', '/api/v1/mfa/totp', { code: opts.code });
      out.result({ totpRemoved: true }, () => 'TOTP removed.');
    }),
  );

  withJson(
    mfa
      .command('recovery-codes')
      .description('replace all your recovery codes with 10 new ones (needs a current code or a recovery code)')
      .requiredOption(codeOption, codeHelp),
  ).action(
    action(async (out, opts: { code: string }) => {
      const { client } = sessionClient();
      const r = await client.call<{ recoveryCodes: string[] }>('POST', '/api/v1/mfa/recovery-codes', { code: opts.code });
      out.result(r, (v: { recoveryCodes: string[] }) =>
        ['New recovery codes (the old ones no longer work; store these safely):', ...v.recoveryCodes.map((c) => `  ${c}`)].join('\n'),
      );
    }),
  );

  withJson(mfa.command('passkeys').description('list your passkeys (register new ones in the console, in a browser)')).action(
    action(async (out) => {
      const { client } = sessionClient();
      const list = await client.call<Passkey[]>('GET', '/api/v1/mfa/webauthn');
      out.result(list, (v: Passkey[]) => table(v.map((p) => ({ id: p.id, name: p.name, created: p.createdAt, lastUsed: p.lastUsedAt ?? 'never' })), ['id', 'name', 'created', 'lastUsed']));
    }),
  );

  withJson(mfa.command('passkey-remove <id>').description('remove one of your passkeys (its id from `accord mfa passkeys`)')).action(
    action(async (out, id: string) => {
      const { client } = sessionClient();
      await client.call('DELETE', `/api/v1/mfa/webauthn/${seg(id)}`);
      out.result({ removed: id }, () => `Passkey ${id} removed.`);
    }),
  );

  withJson(mfa.command('passkey-rename <id>').description('rename one of your passkeys').requiredOption('--name <name>', 'the new name (at most 64 characters)')).action(
    action(async (out, id: string, opts: { name: string }) => {
      const { client } = sessionClient();
      await client.call('PATCH', `/api/v1/mfa/webauthn/${seg(id)}`, { name: opts.name });
      out.result({ renamed: id, name: opts.name }, () => `Passkey ${id} renamed to ${opts.name}.`);
    }),
  );

  withJson(
    mfa
      .command('reset <email>')
      .description("an admin removes every MFA factor of a user who lost them, and ends their sessions")
      .requiredOption('--tenant <name>', 'tenant of the user'),
  ).action(
    action(async (out, email: string, opts: { tenant: string }) => {
      const { client } = sessionClient();
      const r = await client.call<{ totp: boolean; passkeys: number; recoveryCodes: number; sessionsRevoked: number }>('DELETE', `/api/v1/tenants/${seg(opts.tenant)}/users/${seg(email)}/mfa`);
      out.result(r, (v: typeof r) => `MFA of ${email} reset: ${v.totp ? 'TOTP, ' : ''}${v.passkeys} passkey(s), ${v.recoveryCodes} recovery code(s) removed; ${v.sessionsRevoked} session(s) ended.`);
    }),
  );
}
