/** Size limits of a manifest (docs/app-manifest.md, "Limits"). */
export const MANIFEST_LIMITS = Object.freeze({
  roles: 50,
  entities: 100,
  attributesPerEntity: 200,
  indexesPerEntity: 32,
  attributesPerIndex: 8,
  rulesPerOperation: 32,
  enumValues: 200,
  enumValueLength: 100,
  conditions: 100,
  actions: 100,
  inputsPerAction: 50,
  timers: 50,
  settings: 100,
  maxLength: 10_485_760,
});
