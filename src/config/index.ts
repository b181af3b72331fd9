import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import { AccordError } from '../errors/index.ts';
import { type Config, ConfigSchema, listKeys, secretKeys } from './schema.ts';

export { type Config, ConfigSchema } from './schema.ts';

/** ACCORD_* variables that belong to the CLI client or the test harness, not to the server. */
const foreignEnv = new Set(['ACCORD_CONFIG_DIR', 'ACCORD_CONFIG_FILE', 'ACCORD_DEBUG']);
const foreignEnvPrefixes = ['ACCORD_TEST_'];

const knownKeys = new Set(Object.keys(ConfigSchema.properties));

/** Where each config source comes from; later sources win (flags > env > file). */
export interface ConfigSources {
  /** Parsed flags, camelCase keys; undefined values are ignored. */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON config file (its keys are camelCase, `*File` variants allowed). */
  file?: string;
}

const toEnvName = (key: string): string => `ACCORD_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
const fromEnvName = (name: string): string =>
  name
    .slice('ACCORD_'.length)
    .toLowerCase()
    .replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function readSecretFile(path: string, key: string): string {
  try {
    // Trailing newlines are almost always an editor artefact, never part of the secret.
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (cause) {
    throw new AccordError('CONFIG_FILE_UNREADABLE', {
      message: `Cannot read the file given for ${key}: ${path}`,
      details: { key, path },
      cause,
    });
  }
}

/** Resolves `xFile` keys into `x`, rejecting keys the schema does not know. */
function normalise(raw: Record<string, unknown>, origin: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    if (key.endsWith('File') && (secretKeys as readonly string[]).includes(key.slice(0, -4))) {
      const target = key.slice(0, -4);
      if (raw[target] !== undefined) throw invalid(`${origin}: give ${target} or ${key}, not both`, target);
      if (typeof value !== 'string') throw invalid(`${origin}: ${key} must be a file path`, key);
      out[target] = readSecretFile(value, target);
      continue;
    }
    if (!knownKeys.has(key)) {
      throw new AccordError('CONFIG_UNKNOWN_KEY', {
        message: `Unknown configuration key in ${origin}: ${key}`,
        details: { key, origin },
      });
    }
    out[key] = value;
  }
  return out;
}

function invalid(message: string, key?: string): AccordError {
  return new AccordError('CONFIG_INVALID', { message, details: key === undefined ? {} : { key } });
}

function fromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('ACCORD_') || value === undefined) continue;
    if (foreignEnv.has(name) || foreignEnvPrefixes.some((p) => name.startsWith(p))) continue;
    const key = fromEnvName(name);
    if (!knownKeys.has(key) && !(key.endsWith('File') && knownKeys.has(key.slice(0, -4)))) {
      throw new AccordError('CONFIG_UNKNOWN_KEY', {
        message: `Unknown configuration variable: ${name}`,
        details: { key: name, origin: 'environment' },
      });
    }
    raw[key] = (listKeys as readonly string[]).includes(key)
      ? value
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : value;
  }
  return raw;
}

function fromFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new AccordError('CONFIG_FILE_UNREADABLE', {
      message: `Cannot read the config file: ${path}`,
      details: { path },
      cause,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid(`The config file is not valid JSON: ${path}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw invalid(`The config file must hold a JSON object: ${path}`);
  }
  return parsed as Record<string, unknown>;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Builds the configuration once: file, then environment, then flags, each checked for unknown
 * keys; then defaults, conversion (env strings to numbers) and validation. The result is frozen.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const filePath = sources.file ?? env.ACCORD_CONFIG_FILE;
  const merged = {
    ...(filePath === undefined ? {} : normalise(fromFile(filePath), `config file ${filePath}`)),
    ...normalise(fromEnv(env), 'environment'),
    ...normalise(sources.flags ?? {}, 'flags'),
  };
  const withDefaults = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, merged));
  if (!Value.Check(ConfigSchema, withDefaults)) {
    const first = Value.Errors(ConfigSchema, withDefaults).First();
    const key = first?.path.replace(/^\//, '').split('/')[0] ?? '';
    const shownValue = (secretKeys as readonly string[]).includes(key) ? '' : ` (got ${JSON.stringify(first?.value)})`;
    throw invalid(`Invalid configuration for ${toEnvName(key)} / ${key}: ${first?.message ?? 'invalid'}${shownValue}`, key);
  }
  const config = withDefaults as Config;
  if (config.kms === 'pkcs11' && config.rootKeyPassphrase !== undefined) {
    throw invalid('ACCORD_ROOT_KEY_PASSPHRASE_FILE applies to the local KMS only; the HSM protects its own root key.', 'rootKeyPassphrase');
  }
  if (config.kms === 'pkcs11' && (!config.pkcs11Module || !config.pkcs11TokenLabel || config.pkcs11Pin === undefined)) {
    throw invalid('ACCORD_KMS=pkcs11 needs ACCORD_PKCS11_MODULE, ACCORD_PKCS11_TOKEN_LABEL and ACCORD_PKCS11_PIN_FILE.', 'kms');
  }
  if ((config.bootstrapEmail === undefined) !== (config.bootstrapPassword === undefined)) {
    throw invalid('Give both ACCORD_BOOTSTRAP_EMAIL and ACCORD_BOOTSTRAP_PASSWORD_FILE, or neither.', 'bootstrapEmail');
  }
  if (config.httpHeadersTimeoutSeconds > config.httpRequestTimeoutSeconds) {
    throw invalid('ACCORD_HTTP_HEADERS_TIMEOUT_SECONDS must not exceed ACCORD_HTTP_REQUEST_TIMEOUT_SECONDS (the headers are part of the request).', 'httpHeadersTimeoutSeconds');
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw new AccordError('TLS_INCOMPLETE', { message: 'Give both tlsCert and tlsKey, or neither.' });
  }
  return deepFreeze(config);
}

/** The config with secrets masked, safe to log or show to an operator. */
export function redactedConfig(config: Config): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...config };
  for (const key of secretKeys) if (copy[key] !== undefined) copy[key] = '[redacted]';
  return copy;
}

export { toEnvName };
export { formatDuration, parseDuration } from './duration.ts';
