import { Command, CommanderError } from 'commander';
import { registerAccessCommands } from './access.ts';
import { registerAccountCommands } from './account.ts';
import { registerAppCommands } from './apps.ts';
import { registerAuditCommands } from './audit.ts';
import { registerClientCommands } from './clients.ts';
import { registerIdpCommands } from './idp.ts';
import { registerDataCommands } from './data.ts';
import { registerMfaCommands } from './mfa.ts';
import { registerNetCommands } from './net.ts';
import { registerOperatorCommands } from './operator.ts';
import { registerPolicyCommands } from './policy.ts';
import { registerRoleCommands } from './roles.ts';
import { registerKeyCommands } from './keys.ts';
import { registerUserCommands } from './users.ts';
import { registerWafCommands } from './waf.ts';
import { reportError } from './output.ts';
import { registerSessionCommands } from './session.ts';
import { registerStartCommand } from './start.ts';
import { registerTenancyCommands } from './tenancy.ts';
import { AccordError } from '../errors/index.ts';

/** Builds the `accord` command line. */
export function buildProgram(): Command {
  const program = new Command('accord')
    .description('Accord: multi-tenant enterprise application platform')
    .version('0.1.0')
    .exitOverride();
  registerStartCommand(program);
  registerSessionCommands(program);
  registerTenancyCommands(program);
  registerAuditCommands(program);
  registerKeyCommands(program);
  registerUserCommands(program);
  // These extend the `user`, `role` and `tenant` commands registered above.
  registerAccountCommands(program);
  registerRoleCommands(program);
  registerPolicyCommands(program);
  registerMfaCommands(program);
  registerClientCommands(program);
  registerIdpCommands(program);
  registerAccessCommands(program);
  registerAppCommands(program);
  registerWafCommands(program);
  registerOperatorCommands(program);
  registerNetCommands(program);
  registerDataCommands(program);
  const all = (c: Command): Command[] => c.commands.flatMap((x) => [x, ...all(x)]);
  for (const cmd of all(program)) cmd.exitOverride();
  return program;
}

/** Runs the CLI; usage errors print as CLI_USAGE (JSON with --json) and exit 2. */
export async function runCli(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  const json = argv.includes('--json');
  // Commander's own error lines are dropped: every error is printed once, by reportError.
  const all = (c: Command): Command[] => c.commands.flatMap((x) => [x, ...all(x)]);
  for (const cmd of [program, ...all(program)]) cmd.configureOutput({ outputError: () => {} });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return;
      // Help shown because a command group was called bare: usage, not a failure to report twice.
      if (err.code === 'commander.help' || err.code === 'commander.helpDisplayed') {
        process.exitCode = 2;
        return;
      }
      reportError(new AccordError('CLI_USAGE', { message: `${err.message.replace(/^error: /, '')} (run with --help for usage)` }), json);
      return;
    }
    reportError(err, json);
  }
}
