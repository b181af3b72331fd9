import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { actionReader, type CompiledManifest, compileDdl, compileManifestText, formatDiagnostic, manifestJsonSchema, SOURCE_LIMITS } from '../apps/index.ts';
import { AccordError } from '../errors/index.ts';
import { action } from './command.ts';
import { cliError } from './output.ts';

/** Compiles a manifest file locally: no server, no database. */
function compileFile(path: string): CompiledManifest {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new Error('not a file');
    // Read at most one byte over the limit; the compiler reports APP_MANIFEST_TOO_LARGE.
    text = st.size > SOURCE_LIMITS.maxBytes ? 'x'.repeat(SOURCE_LIMITS.maxBytes + 1) : readFileSync(path, 'utf8');
  } catch {
    throw cliError('CLI_FILE_UNREADABLE', `Cannot read the manifest ${path}.`, { path });
  }
  return compileManifestText(text, { file: path, readFile: actionReader(path) });
}

/** The error for a broken manifest; people also get one line per finding on stderr. */
function failed(r: CompiledManifest, json: boolean): AccordError {
  const n = r.errors.length;
  if (!json) for (const d of r.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
  return new AccordError('APP_MANIFEST_INVALID', {
    message: `The manifest has ${n} error${n === 1 ? '' : 's'}${r.warnings.length ? ` and ${r.warnings.length} warning${r.warnings.length === 1 ? '' : 's'}` : ''}.`,
    details: { errors: r.errors, warnings: r.warnings },
  });
}

/** `accord app validate | compile | schema`: local commands over a manifest file. */
export function registerAppCommands(program: Command): void {
  const app = program.command('app').description('Model-driven apps: validate and compile manifests');

  app
    .command('validate <file>')
    .description('Validate an app manifest (YAML or JSON) locally; lists every error and warning with its position')
    .option('--json', 'machine-readable output')
    .action(
      action(async (out, file: string) => {
        const r = compileFile(file);
        if (!r.ok || !r.ir || !r.revision) throw failed(r, out.json);
        const { ir, revision } = r;
        out.result(
          { valid: true, app: ir.name, version: ir.version, revision: revision.hash, entities: ir.entities.map((e) => e.name), warnings: r.warnings },
          () =>
            [
              `${ir.name} ${ir.version} is valid: revision ${revision.short}, ${ir.entities.length} entit${ir.entities.length === 1 ? 'y' : 'ies'}, ${ir.roles.length} role${ir.roles.length === 1 ? '' : 's'}`,
              ...r.warnings.map(formatDiagnostic),
            ].join('\n'),
        );
      }),
    );

  app
    .command('compile <file>')
    .description('Compile a manifest: its revision hash, IR and the DDL of its tables')
    .option('--schema <name>', 'the schema the DDL creates tables in', 'app')
    .option('--json', 'machine-readable output')
    .action(
      action(async (out, file: string, opts: { schema: string }) => {
        const r = compileFile(file);
        if (!r.ok || !r.ir || !r.revision) throw failed(r, out.json);
        const ddl = compileDdl(r.ir, { schema: opts.schema });
        out.result({ revision: r.revision.hash, ir: r.ir, ddl: ddl.map((s) => s.sql), warnings: r.warnings }, () => ddl.map((s) => `${s.sql};`).join('\n\n'));
      }),
    );

  app
    .command('schema')
    .description('Print the JSON Schema of the manifest (for editors)')
    .option('--json', 'accepted; the output is always JSON')
    .action(
      action(async () => {
        process.stdout.write(`${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
      }),
    );
}
