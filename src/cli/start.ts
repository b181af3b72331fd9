import { relative } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/index.ts';
import { action, withJson } from './command.ts';

interface StartOptions {
  json?: boolean;
  config?: string;
  dataDir?: string;
  databaseUrl?: string;
  host?: string;
  port?: string;
  publicUrl?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsHostname?: string[];
  deploymentMode?: string;
  logLevel?: string;
}

const display = (path: string) => {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') ? path : rel;
};

/** `accord start`: the one command that touches the database directly (it is the server). */
export function registerStartCommand(program: Command): void {
  withJson(
    program
      .command('start')
      .description('start a platform node (embedded PGlite by default, or --database-url)')
      .option('--config <file>', 'JSON config file (ACCORD_CONFIG_FILE)')
      .option('--data-dir <dir>', 'data directory (ACCORD_DATA_DIR, default ./.accord)')
      .option('--database-url <url>', 'PostgreSQL server URL (ACCORD_DATABASE_URL; prefer ACCORD_DATABASE_URL_FILE)')
      .option('--host <address>', 'listen address (ACCORD_HOST, default 127.0.0.1)')
      .option('--port <port>', 'HTTPS port (ACCORD_PORT, default 8443)')
      .option('--public-url <url>', 'URL clients use (ACCORD_PUBLIC_URL)')
      .option('--tls-cert <file>', 'PEM certificate chain (ACCORD_TLS_CERT)')
      .option('--tls-key <file>', 'PEM private key (ACCORD_TLS_KEY)')
      .option('--tls-hostname <name...>', 'extra names for the generated certificate (ACCORD_TLS_HOSTNAMES)')
      .option('--deployment-mode <mode>', 'managed | self-managed (ACCORD_DEPLOYMENT_MODE)')
      .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (ACCORD_LOG_LEVEL)'),
  ).action(
    action(async (out, opts: StartOptions) => {
      const config = loadConfig({
        ...(opts.config ? { file: opts.config } : {}),
        flags: {
          dataDir: opts.dataDir,
          databaseUrl: opts.databaseUrl,
          host: opts.host,
          port: opts.port,
          publicUrl: opts.publicUrl,
          tlsCert: opts.tlsCert,
          tlsKey: opts.tlsKey,
          tlsHostnames: opts.tlsHostname,
          deploymentMode: opts.deploymentMode,
          logLevel: opts.logLevel,
        },
      });
      // Loaded here so client commands do not pay for the server's modules.
      const { createLogger, startPlatform } = await import('../server/index.ts');
      // With --json, stdout carries only the ready (or error) document; logs go to stderr.
      const node = await startPlatform(config, out.json ? { logger: createLogger(config.logLevel, process.stderr) } : {});
      const b = node.bootstrap;
      const summary = {
        event: 'ready',
        url: node.url,
        engine: node.engine,
        database: node.databaseLocation,
        deploymentMode: config.deploymentMode,
        caFile: node.tls.caFile ?? null,
        caFingerprint: node.tls.caFingerprint ?? null,
        certificateFingerprint: node.tls.fingerprint,
        setup: b.state === 'token-issued' ? { state: b.state, token: b.token, expiresAt: b.expiresAt.toISOString() } : { ...b },
      };
      const lines = [
        '',
        `Accord is running at ${node.url}`,
        `  database        ${node.databaseLocation}`,
        `  deployment mode ${config.deploymentMode}`,
        ...(node.tls.caFile
          ? [`  CA certificate  ${display(node.tls.caFile)}`, `  CA fingerprint  SHA256 ${node.tls.caFingerprint}`]
          : [`  certificate     SHA256 ${node.tls.fingerprint}`]),
      ];
      const ca = node.tls.caFile ? ` --ca-file ${display(node.tls.caFile)}` : '';
      if (b.state === 'token-issued') {
        lines.push(
          `  setup token     ${b.token}   (single use, valid until ${b.expiresAt.toISOString()})`,
          '',
          'Create the first operator:',
          `  npx accord setup --url ${node.url}${ca} --token ${b.token} --email you@example.com --password-file FILE`,
        );
      } else if (b.state === 'token-pending') {
        lines.push(
          `  setup           pending: a setup token was issued earlier and is valid until ${b.expiresAt.toISOString()};`,
          '                  it is shown only once. Restart after it expires for a new one.',
        );
      } else if (b.state === 'created-operator') {
        lines.push(`  operator        ${b.email} created from ACCORD_BOOTSTRAP_EMAIL`);
      }
      lines.push('');
      if (out.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
      else process.stdout.write(`${lines.join('\n')}\n`);

      const stop = async (signal: string) => {
        node.logger.info({ signal }, 'stopping');
        await node.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
    }),
  );
}
