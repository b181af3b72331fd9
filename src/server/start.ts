import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/index.ts';
import { type Database, migrate, openDatabase } from '../db/index.ts';
import { openKms } from '../crypto/kms/index.ts';
import { Keyring } from '../crypto/keyring/index.ts';
import { AccordError, catalog, isAccordError } from '../errors/index.ts';
import { appDataReencrypter, RETENTION_INTERVAL_MS, retentionJobSteps, rewrapStageIndexKeys, scheduleRetention } from '../apps/index.ts';
import { JobRunner } from '../jobs/index.ts';
import { keyJobSteps } from '../keys/index.ts';
import { systemSource } from '../audit-chain/index.ts';
import { loadOrCreateSigner } from '../audit-chain/index.ts';
import { openDataPlane } from '../kernel/index.ts';
import { AuditJobs, AuditSealer, archiveTask, checkpointTask, SyslogSink, syslogTask } from '../audit-trail/index.ts';
import { type BootstrapState, checkIamConfig, ensureBootstrap, pruneIdentity } from '../iam/index.ts';
import { buildApp } from './app.ts';
import { createLogger } from './logger.ts';
import { loadOrCreateTlsMaterial, type TlsMaterial } from './tls/index.ts';

/** A platform node that is listening. */
export interface RunningPlatform {
  readonly url: string;
  readonly port: number;
  readonly engine: Database['engine'];
  readonly databaseLocation: string;
  readonly tls: TlsMaterial;
  readonly bootstrap: BootstrapState;
  readonly app: FastifyInstance;
  readonly logger: Logger;
  close(): Promise<void>;
}

function displayUrl(config: Config, port: number): string {
  if (config.publicUrl) return config.publicUrl.replace(/\/$/, '');
  const wildcard = config.host === '0.0.0.0' || config.host === '::' || config.host === '127.0.0.1' || config.host === '::1';
  return `https://${wildcard ? 'localhost' : config.host}:${port}`;
}

/** Errors of the crypto layer carry catalog codes; give them the catalog's shape. */
function asCatalogError(err: unknown): unknown {
  const code = (err as { code?: unknown })?.code;
  if (!isAccordError(err) && typeof code === 'string' && Object.hasOwn(catalog, code)) {
    return new AccordError(code as keyof typeof catalog, { message: (err as Error).message, cause: err });
  }
  return err;
}

function readCaFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw new AccordError('CONFIG_FILE_UNREADABLE', { message: `Cannot read auditSyslogCaFile ${path}.`, details: { key: 'auditSyslogCaFile', path }, cause });
  }
}

async function tlsFor(config: Config): Promise<TlsMaterial> {
  // TLS failures are catalog errors already (TlsError is an AccordError).
  return loadOrCreateTlsMaterial({
    dataDir: config.dataDir,
    ...(config.tlsCert ? { certFile: config.tlsCert } : {}),
    ...(config.tlsKey ? { keyFile: config.tlsKey } : {}),
    hostnames: [...config.tlsHostnames],
  });
}

/**
 * Starts one platform node: TLS material, database, catalog migrations, bootstrap, then the
 * HTTPS listener. Anything that fails closes what was opened and throws a catalog error.
 */
export async function startPlatform(config: Config, opts: { logger?: Logger } = {}): Promise<RunningPlatform> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  // Every setting that needs more than the schema's check is checked before anything is touched:
  // a bad value found after migration would already have issued a setup token nobody sees.
  checkIamConfig(config);
  // The database first: a start that cannot reach it must leave nothing behind, not even a CA.
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  let app: FastifyInstance | undefined;
  let closeKms: (() => Promise<void>) | undefined;
  let closeDataPlane: (() => Promise<void>) | undefined;
  try {
    mkdirSync(resolve(config.dataDir), { recursive: true, mode: 0o700 });
    const tls = await tlsFor(config);
    const { applied } = await migrate(database.db);
    if (applied.length > 0) logger.info({ applied }, 'catalog migrations applied');
    const bootstrap = await ensureBootstrap(database.db, { email: config.bootstrapEmail, password: config.bootstrapPassword });
    // Once anything is wrapped by a root key, a missing root key is an error, never a reason to make a new one.
    const hasWrappedKeys =
      (await database.db.selectFrom('accord.tenant_keks').select('tenant_id').limit(1).executeTakeFirst()) !== undefined ||
      (await database.db.selectFrom('accord.iam_keys').select('kid').limit(1).executeTakeFirst()) !== undefined;
    const kms = await openKms({
      kms: config.kms,
      dataDir: config.dataDir,
      createIfMissing: !hasWrappedKeys,
      ...(config.rootKeyPassphrase === undefined ? {} : { passphrase: config.rootKeyPassphrase }),
      ...(config.kms === 'pkcs11'
        ? { pkcs11: { module: config.pkcs11Module ?? '', tokenLabel: config.pkcs11TokenLabel ?? '', pin: config.pkcs11Pin ?? '' } }
        : {}),
    }).catch((err: unknown) => {
      throw asCatalogError(err);
    });
    closeKms = () => kms.close();
    const keyring = new Keyring(kms);
    // Events a previous run committed but did not seal (a crash, a kill -9) are sealed before this
    // node serves anything; from then on the sealer follows the writes.
    const sealer = new AuditSealer(database.db, logger, { delayMs: config.auditSealDelayMs, intervalMs: config.auditSealIntervalMs });
    const leftover = await sealer.sealNow();
    if (leftover && leftover.sealed > 0) logger.info({ sealed: leftover.sealed }, 'sealed audit events left unsealed by an earlier run');
    const signer = loadOrCreateSigner(config.auditSigningKeyFile ?? join(config.dataDir, 'keys', 'audit-signing-key.pem'));
    // The data plane: on PostgreSQL a pool of its own logging in as the gateway role (which holds
    // nothing by itself), on PGlite the shared connection.
    const dataPlane = await openDataPlane(database, { databaseUrl: config.databaseUrl, kms });
    closeDataPlane = () => dataPlane.close();
    app = await buildApp({ config, database, logger, signer, keyring, dataPlane, https: { key: tls.key, cert: tls.cert } });
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const running = app;
    const sink = config.auditSyslogUrl
      ? new SyslogSink(database.db, {
          name: 'syslog',
          url: config.auditSyslogUrl,
          ...(config.auditSyslogCaFile ? { caPem: readCaFile(config.auditSyslogCaFile) } : {}),
        })
      : undefined;
    const jobs = new AuditJobs(
      [
        ...(sink ? [syslogTask(sink)] : []),
        checkpointTask(
          database.db,
          signer,
          { everyRecords: config.auditCheckpointEveryRecords, everyMs: config.auditCheckpointEveryMinutes * 60_000 },
          config.auditCheckpointDir,
        ),
        archiveTask(
          database.db,
          signer,
          { dir: config.auditArchiveDir ?? join(config.dataDir, 'audit-archive'), onlineDays: config.auditOnlineDays, retentionDays: config.auditRetentionDays },
          logger,
        ),
      ],
      logger,
    );
    sealer.start();
    jobs.start();
    // Grant last-use for access reviews: noted in memory per request, written every 30 s and at close.
    running.iam.grantUsage.start(30_000, (err) => logger.warn({ err }, 'grant usage flush failed'));
    // Identity housekeeping every 10 minutes: old sign-in failures, ended sessions, spent tokens.
    const housekeeping = setInterval(() => {
      pruneIdentity(database.db, running.iam.signIn.lockout).catch((err) => logger.warn({ err }, 'identity housekeeping failed'));
    }, 600_000);
    housekeeping.unref();
    // Retention rules: every hour, one purge job per tenant that has one deployed (and none queued).
    const retention = setInterval(() => {
      scheduleRetention(database.db).catch((err) => logger.warn({ err }, 'retention scheduling failed'));
    }, RETENTION_INTERVAL_MS);
    retention.unref();
    const runner = new JobRunner(database.db, new Map([...keyJobSteps(keyring, systemSource, (msg, err) => logger.warn({ err }, msg), { reencryptAppData: appDataReencrypter(dataPlane, keyring), rewrapAppKeys: (trx, tenantId, toVersion, batch) => rewrapStageIndexKeys(trx, keyring, tenantId, toVersion, batch) }), ...retentionJobSteps(dataPlane)]), logger);
    runner.start();
    logger.info({ engine: database.engine, port, deploymentMode: config.deploymentMode }, 'accord started');
    return {
      url: displayUrl(config, port),
      port,
      engine: database.engine,
      databaseLocation: database.location,
      tls,
      bootstrap,
      app: running,
      logger,
      async close() {
        clearInterval(housekeeping);
        clearInterval(retention);
        await running.close();
        await runner.stop();
        // Before the database closes: a last seal links everything written before a clean stop,
        // a last checkpoint covers it, and a last delivery sends it.
        await sealer.stop();
        await jobs.stop();
        await sink?.close();
        await dataPlane.close();
        await kms.close();
        await database.close();
      },
    };
  } catch (err) {
    await app?.close().catch(() => {});
    await closeDataPlane?.().catch(() => {});
    await closeKms?.().catch(() => {});
    await database.close().catch(() => {});
    if (isAccordError(err)) throw err;
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new AccordError('CONFIG_INVALID', {
        message: `Port ${config.port} on ${config.host} is already in use. Stop the other process or pass --port.`,
        details: { key: 'port' },
      });
    }
    throw err;
  }
}
