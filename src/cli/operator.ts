import type { Command } from 'commander';
import { loadConfig } from '../config/index.ts';
import { action, withJson } from './command.ts';

/**
 * `accord operator ...`: tasks on the node itself, with its data directory (or database URL),
 * that need no sign-in. Like `start`, they touch the database directly, through the server's
 * modules; everything else goes through the API.
 */
export function registerOperatorCommands(program: Command): void {
  const op = program.command('operator').description('tasks on the node itself, with the data directory (no sign-in)');
  withJson(
    op
      .command('unlock <email>')
      .description("end an email's sign-in lock (the operator's way back in); PGlite: with the node stopped")
      .option('--config <file>', 'JSON config file (ACCORD_CONFIG_FILE)')
      .option('--data-dir <dir>', 'data directory (ACCORD_DATA_DIR, default ./.accord)')
      .option('--database-url <url>', 'PostgreSQL server URL (ACCORD_DATABASE_URL; prefer ACCORD_DATABASE_URL_FILE)'),
  ).action(
    action(async (out, email: string, opts: { config?: string; dataDir?: string; databaseUrl?: string }) => {
      const config = loadConfig({ ...(opts.config ? { file: opts.config } : {}), flags: { dataDir: opts.dataDir, databaseUrl: opts.databaseUrl, logLevel: 'silent' } });
      const { operatorUnlock } = await import('../server/index.ts');
      const r = await operatorUnlock(config, email);
      out.result(r, (v: typeof r) => `${v.email}: ${v.wasLocked ? 'lock ended' : 'was not locked'}, ${v.failures} failed attempt(s) forgotten.`);
    }),
  );
}
