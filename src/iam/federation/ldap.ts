import type { IamKey } from '../iam-key.ts';
import type { Provider } from './providers.ts';
import { type FederatedIdentity, FederationRefusal } from './provisioning.ts';

/** LDAP sign-in (filled in below). */
export async function ldapLogin(_key: IamKey, _p: Provider, _username: string, _password: string): Promise<FederatedIdentity> {
  throw new FederationRefusal('ldap-not-available');
}

export async function ldapTest(_key: IamKey, _p: Provider): Promise<{ ok: boolean; checks: { name: string; ok: boolean; detail: string }[] }> {
  return { ok: false, checks: [] };
}
