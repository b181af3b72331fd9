import type { Command } from 'commander';
import { type ApiClient, apiClient } from './client.ts';
import { cliError, type Output, output, RemoteError, reportError } from './output.ts';
import { loadProfile, type Profile } from './profile.ts';

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
  if (err instanceof RemoteError && err.code === 'IAM_UNAUTHENTICATED') {
    return new RemoteError(err.code, err.status, `${err.message} Your session may have ended: run \`accord login\`.`);
  }
  return err;
}

/** The saved session's client; fails with CLI_NOT_LOGGED_IN when there is none. */
export function sessionClient(): { client: ApiClient; profile: Profile } {
  const profile = loadProfile();
  if (!profile?.token) throw cliError('CLI_NOT_LOGGED_IN', 'Not logged in: run `accord login --url URL --ca-file FILE --email E --password-file F`.');
  return { client: apiClient(profile), profile };
}

/** Adds `--json` to a command. */
export function withJson(cmd: Command): Command {
  return cmd.option('--json', 'machine-readable output on stdout (errors too, with their catalog code)');
}
