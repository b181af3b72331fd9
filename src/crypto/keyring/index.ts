export { type DataKey, Keyring } from './keyring.ts';
export { dekAad, kekAad, unwrapKey, wrapKey } from './wrap.ts';
