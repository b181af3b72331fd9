import { Command, CommanderError } from 'commander';
import { registerAuditCommands } from './audit.ts';
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
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerStartCommand(program);
  registerSessionCommands(program);
  registerTenancyCommands(program);
  registerAuditCommands(program);
  const all = (c: Command): Command[] => c.commands.flatMap((x) => [x, ...all(x)]);
  for (const cmd of all(program)) cmd.exitOverride();
  return program;
}

/** Runs the CLI; usage errors print as CLI_USAGE (JSON with --json) and exit 2. */
export async function runCli(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  const json = argv.includes('--json');
  if (json) program.configureOutput({ writeErr: () => {} });
  const all = (c: Command): Command[] => c.commands.flatMap((x) => [x, ...all(x)]);
  for (const cmd of all(program)) if (json) cmd.configureOutput({ writeErr: () => {} });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return;
      reportError(new AccordError('CLI_USAGE', { message: err.message.replace(/^error: /, '') }), json);
      return;
    }
    reportError(err, json);
  }
}
