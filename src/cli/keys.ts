import type { Command } from 'commander';
import { action, sessionClient, withJson } from './command.ts';
import { table } from './output.ts';
import { readArgFile } from './profile.ts';

const seg = encodeURIComponent;

interface KeyStatus {
  tenant: string;
  provider: string;
  rootKeyId: string;
  kek: { version: number; state: string; rootKeyId: string }[];
  stages: { stage: string; deks: { version: number; state: string; kekVersion: number; values: number }[] }[];
  jobs: { id: string; kind: string; state: string; progress: Record<string, unknown>; lastAttemptFailed: boolean }[];
}

/** `accord keys status | rotate | rotate-root` and `accord secret set | list`. */
export function registerKeyCommands(program: Command): void {
  const keys = program.command('keys').description('encryption keys (DATA-1)');
  withJson(keys.command('status').description("a tenant's key versions and rotation jobs").requiredOption('--tenant <name>', 'tenant')).action(
    action(async (out, opts: { tenant: string }) => {
      const { client } = sessionClient();
      const s = await client.call<KeyStatus>('GET', `/api/v1/tenants/${seg(opts.tenant)}/keys`);
      out.result(s, (v: KeyStatus) => {
        const keks = v.kek.map((k) => `KEK v${k.version} ${k.state} (root ${k.rootKeyId})`).join('\n');
        const deks = table(
          v.stages.flatMap((st) => st.deks.map((d) => ({ stage: st.stage, version: d.version, state: d.state, kek: d.kekVersion, values: d.values }))),
          ['stage', 'version', 'state', 'kek', 'values'],
        );
        const jobs = v.jobs.map((j) => `${j.kind} ${j.state} ${JSON.stringify(j.progress)}`).join('\n');
        return `provider ${v.provider}\n${keks}\n${deks}${jobs ? `\njobs:\n${jobs}` : ''}`;
      });
    }),
  );
  withJson(
    keys
      .command('rotate')
      .description("new KEK version for a tenant (or a new data key for one stage); a job moves existing material over")
      .requiredOption('--tenant <name>', 'tenant')
      .option('--stage <name>', "rotate this stage's data key instead"),
  ).action(
    action(async (out, opts: { tenant: string; stage?: string }) => {
      const { client } = sessionClient();
      const r = await client.call<{ kind: string; version: number; jobId: string }>('POST', `/api/v1/tenants/${seg(opts.tenant)}/keys/rotate`, opts.stage ? { stage: opts.stage } : {});
      out.result(r, (v: { kind: string; version: number; jobId: string }) => `${v.kind.toUpperCase()} v${v.version} is active; job ${v.jobId} moves existing material over.`);
    }),
  );
  withJson(keys.command('rotate-root').description('new KMS root key version; tenant KEKs are rewrapped by a job')).action(
    action(async (out) => {
      const { client } = sessionClient();
      const r = await client.call<{ rootKeyId: string; jobId: string }>('POST', '/api/v1/keys/root/rotate');
      out.result(r, (v: { rootKeyId: string; jobId: string }) => `Root key ${v.rootKeyId} is active; job ${v.jobId} rewraps tenant keys.`);
    }),
  );

  const secret = program.command('secret').description("a stage's secret settings (write-only)");
  withJson(
    secret
      .command('set <name>')
      .description('set a secret (read from a file, never from the command line)')
      .requiredOption('--tenant <name>', 'tenant')
      .requiredOption('--stage <name>', 'stage')
      .requiredOption('--value-file <file>', 'file holding the value'),
  ).action(
    action(async (out, name: string, opts: { tenant: string; stage: string; valueFile: string }) => {
      const value = readArgFile(opts.valueFile, '--value-file', { trimNewline: true });
      const { client } = sessionClient();
      const r = await client.call<{ name: string; keyVersion: number }>(
        'PUT',
        `/api/v1/tenants/${seg(opts.tenant)}/stages/${seg(opts.stage)}/secrets/${seg(name)}`,
        { value },
      );
      out.result(r, (v: { name: string; keyVersion: number }) => `Secret ${v.name} set (data key v${v.keyVersion}).`);
    }),
  );
  withJson(secret.command('list').description('secret names, values masked').requiredOption('--tenant <name>', 'tenant').requiredOption('--stage <name>', 'stage')).action(
    action(async (out, opts: { tenant: string; stage: string }) => {
      const { client } = sessionClient();
      const list = await client.call<{ name: string; value: string; keyVersion: number; updatedAt: string }[]>(
        'GET',
        `/api/v1/tenants/${seg(opts.tenant)}/stages/${seg(opts.stage)}/secrets`,
      );
      out.result(list, (v: typeof list) => table(v, ['name', 'value', 'keyVersion', 'updatedAt']));
    }),
  );
}

