import type { Command } from 'commander';
import { type ApiClient, apiClient } from './client.ts';
import { cliError, type Output, output, RemoteError, reportError } from './output.ts';
import { loadProfile, type Profile, saveProfile } from './profile.ts';

/** Options every command has. */
export interface CommonOptions {
  json?: boolean;
}

/**
 * Wraps a command's action: builds its output, runs it, and turns any error into a printed
 * catalog error with a non-zero exit code.
 */
export function action<A extends unknown[]>(
  fn: (out: Output, ...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    // Commander passes the options object second to last, the Command last.
    const opts = (args.at(-2) ?? {}) as CommonOptions;
    const out = output(opts.json === true);
    try {
      await fn(out, ...args);
    } catch (err) {
      reportError(explain(err), out.json);
    }
  };
}

function explain(err: unknown): unknown {
  if (err instanceof RemoteError && err.code === 'IAM_MFA_ENROLMENT_REQUIRED') {
    return new RemoteError(err.code, err.status, `${err.message} Run \`accord mfa enroll\`, then \`accord mfa confirm --code CODE\`.`);
  }
  if (err instanceof RemoteError && ['IAM_UNAUTHENTICATED', 'IAM_SESSION_ENDED', 'IAM_REFRESH_REUSED', 'IAM_TOKEN_EXPIRED'].includes(err.code)) {
    return new RemoteError(err.code, err.status, `${err.message} Your session may have ended: run \`accord login\`.`);
  }
  return err;
}

/** What the server answers to a sign-in step or a refresh (see SignInOut in src/iam/routes.ts). */
export interface SignInAnswer {
  status: 'signed-in' | 'mfa-required' | 'mfa-enrolment-required';
  accessToken?: string;
  refreshToken?: string;
  accessExpiresAt?: string;
  sessionExpiresAt?: string;
  mfaToken?: string;
  methods?: string[];
  user: { id: string; email: string; tenant: string | null };
  deviceToken?: string;
}

/** Saves a session answer into the profile (keeping URL and CA). */
export function saveSession(base: Pick<Profile, 'url' | 'ca' | 'deviceToken'>, s: SignInAnswer): Profile {
  const profile: Profile = {
    url: base.url,
    ...(base.ca ? { ca: base.ca } : {}),
    ...(s.accessToken ? { token: s.accessToken } : {}),
    ...(s.refreshToken ? { refreshToken: s.refreshToken } : {}),
    email: s.user.email,
    ...(s.accessExpiresAt ? { expiresAt: s.accessExpiresAt } : {}),
    ...(s.sessionExpiresAt ? { sessionExpiresAt: s.sessionExpiresAt } : {}),
    ...(s.status === 'mfa-enrolment-required' ? { enrolmentOnly: true } : {}),
    ...(s.deviceToken ? { deviceToken: s.deviceToken } : base.deviceToken ? { deviceToken: base.deviceToken } : {}),
  };
  saveProfile(profile);
  return profile;
}

/**
 * The saved session's client; fails with CLI_NOT_LOGGED_IN when there is none. Access tokens
 * live minutes: when the server says one expired, the client exchanges the refresh token once
 * (rotation: the new pair is saved at once, the old refresh token is spent) and retries.
 */
export function sessionClient(): { client: ApiClient; profile: Profile } {
  const profile = loadProfile();
  if (!profile?.token) throw cliError('CLI_NOT_LOGGED_IN', 'Not logged in: run `accord login --url URL --ca-file FILE --email E --password-file F`.');
  let current = profile;
  const client: ApiClient = {
    async call<T>(method: string, path: string, body?: unknown): Promise<T> {
      try {
        return await apiClient(current).call<T>(method, path, body);
      } catch (err) {
        if (!(err instanceof RemoteError) || err.code !== 'IAM_TOKEN_EXPIRED' || !current.refreshToken) throw err;
        const renewed = await apiClient({ url: current.url, ...(current.ca ? { ca: current.ca } : {}) }).call<SignInAnswer>('POST', '/api/v1/auth/refresh', {
          refreshToken: current.refreshToken,
        });
        current = saveSession(current, renewed);
        return apiClient(current).call<T>(method, path, body);
      }
    },
  };
  return { client, profile };
}

/** Adds `--json` to a command. */
export function withJson(cmd: Command): Command {
  return cmd.option('--json', 'machine-readable output on stdout (errors too, with their catalog code)');
}
