import type { Config } from '../config/index.ts';
import { migrate, openDatabase } from '../db/index.ts';
import { type UnlockResult, unlockSignIn } from '../iam/index.ts';

/**
 * Operator tasks run on the node itself, with the data directory (or the database URL) and no
 * sign-in: the way back in when the operator account is locked. Having the data directory is
 * already full control of the installation, so this grants nothing new; it is audited like the
 * API's unlock, with the operator CLI as the actor.
 */
export async function operatorUnlock(config: Config, email: string): Promise<UnlockResult> {
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    await migrate(database.db);
    const source = { actor: { type: 'system' as const, id: null, label: 'operator-cli', roles: [] }, requestId: null, sourceIp: null, userAgent: 'accord operator unlock' };
    return await unlockSignIn(database.db, source, { email, tenantId: null });
  } finally {
    await database.close();
  }
}
