/**
 * The one error catalog. Codes are stable API: never rename or reuse one. Each entry gives the
 * HTTP status and the public message (safe for any client; never a secret, never a cause).
 */
export const catalog = {
  // Generic
  INTERNAL: { status: 500, title: 'Internal error', message: 'An unexpected error occurred.' },
  REQUEST_INVALID: { status: 400, title: 'Invalid request', message: 'The request is not valid.' },
  REQUEST_NOT_FOUND: { status: 404, title: 'Not found', message: 'No such resource.' },
  REQUEST_METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed', message: 'Method not allowed.' },
  REQUEST_TOO_LARGE: { status: 413, title: 'Payload too large', message: 'The request body is too large.' },
  REQUEST_TEXT_INVALID: {
    status: 400,
    title: 'Invalid text',
    message: 'Text in the request must be well-formed Unicode without NUL characters.',
  },
  REQUEST_URL_INVALID: { status: 400, title: 'Invalid URL', message: 'The URL is malformed (a bad percent-encoding or not UTF-8).' },
  REQUEST_URL_TOO_LONG: { status: 414, title: 'URL too long', message: 'A path segment of the URL is too long.' },
  REQUEST_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    title: 'Unsupported media type',
    message: 'Send application/json.',
  },
  // Configuration (raised at boot, printed by the CLI)
  CONFIG_INVALID: { status: 500, title: 'Invalid configuration', message: 'The configuration is not valid.' },
  CONFIG_UNKNOWN_KEY: { status: 500, title: 'Unknown configuration key', message: 'Unknown configuration key.' },
  CONFIG_FILE_UNREADABLE: { status: 500, title: 'Unreadable file', message: 'A configured file cannot be read.' },
  // Storage
  DB_UNREACHABLE: { status: 503, title: 'Database unreachable', message: 'The database cannot be reached.' },
  DB_DATA_DIR_LOCKED: {
    status: 500,
    title: 'Data directory in use',
    message: 'Another Accord process is using this data directory.',
  },
  DB_NOT_READY: { status: 503, title: 'Not ready', message: 'The platform is not ready.' },
  // TLS
  TLS_FILE_UNREADABLE: { status: 500, title: 'TLS file unreadable', message: 'A TLS file cannot be read.' },
  TLS_FILE_UNWRITABLE: { status: 500, title: 'TLS file unwritable', message: 'A TLS file cannot be written.' },
  TLS_FILE_INVALID: { status: 500, title: 'TLS file invalid', message: 'A TLS file holds no usable certificate or key.' },
  TLS_KEY_MISMATCH: { status: 500, title: 'TLS key mismatch', message: 'The private key does not belong to the certificate.' },
  TLS_CA_KEY_MISSING: { status: 500, title: 'TLS CA key missing', message: 'The local CA key is missing.' },
  TLS_CA_EXPIRED: { status: 500, title: 'TLS CA expired', message: 'The local CA has expired.' },
  TLS_INVALID_HOSTNAME: { status: 500, title: 'Invalid TLS hostname', message: 'A hostname cannot be put in a certificate.' },
  TLS_LOCK_TIMEOUT: { status: 500, title: 'TLS lock timeout', message: 'Another process holds the TLS directory lock.' },
  TLS_INCOMPLETE: {
    status: 500,
    title: 'TLS configuration incomplete',
    message: 'Give both a certificate and a key.',
  },
  // Identity and access
  IAM_UNAUTHENTICATED: { status: 401, title: 'Unauthenticated', message: 'Sign in to use this resource.' },
  IAM_FORBIDDEN: { status: 403, title: 'Forbidden', message: 'You do not have permission for this action.' },
  IAM_INVALID_CREDENTIALS: { status: 401, title: 'Invalid credentials', message: 'Email or password is wrong.' },
  IAM_PASSWORD_POLICY: {
    status: 400,
    title: 'Password rejected',
    message: 'The password does not meet the password policy.',
  },
  IAM_SETUP_TOKEN_INVALID: {
    status: 401,
    title: 'Invalid setup token',
    message: 'The setup token is wrong, expired or already used.',
  },
  IAM_USER_EXISTS: { status: 409, title: 'User exists', message: 'A user with this email already exists in this directory.' },
  IAM_USER_NOT_FOUND: { status: 404, title: 'User not found', message: 'No such user.' },
  IAM_ROLE_UNKNOWN: { status: 400, title: 'Unknown role', message: 'No such role.' },
  IAM_GRANT_ESCALATION: {
    status: 403,
    title: 'Grant refused',
    message: 'You can only grant roles whose permissions you hold yourself on that scope.',
  },
  IAM_GRANT_NOT_FOUND: { status: 404, title: 'Grant not found', message: 'No such grant.' },
  IAM_TENANT_REQUIRED: {
    status: 400,
    title: 'Tenant required',
    message: 'This email exists in several tenants: say which tenant to sign in to.',
  },
  IAM_LOCKED: { status: 429, title: 'Too many failed sign-ins', message: 'Too many failed sign-ins; try again later.' },
  IAM_SETUP_DONE: { status: 409, title: 'Already set up', message: 'This installation already has an operator.' },
  // Identity and access: tokens and sessions
  IAM_TOKEN_INVALID: { status: 401, title: 'Invalid token', message: 'The token is malformed or its signature is wrong.' },
  IAM_TOKEN_EXPIRED: { status: 401, title: 'Token expired', message: 'The access token has expired: refresh it or sign in again.' },
  IAM_SESSION_ENDED: { status: 401, title: 'Session ended', message: 'The session has ended (signed out, revoked or timed out): sign in again.' },
  IAM_REFRESH_REUSED: {
    status: 401,
    title: 'Refresh token reused',
    message: 'This refresh token was already used; the whole session has been revoked as a precaution.',
  },
  IAM_CSRF: { status: 403, title: 'CSRF check failed', message: 'A cookie-authenticated change needs the x-csrf-token header of the session.' },
  IAM_WRONG_AUDIENCE: { status: 403, title: 'Wrong kind of token', message: 'This token is not valid for this part of the API.' },
  IAM_SESSION_NOT_FOUND: { status: 404, title: 'Session not found', message: 'No such session.' },
  IAM_POLICY_INVALID: { status: 400, title: 'Invalid policy', message: 'The session or MFA policy is not valid.' },
  // Identity and access: MFA
  IAM_MFA_ENROLMENT_REQUIRED: {
    status: 403,
    title: 'MFA enrolment required',
    message: 'Your tenant requires MFA: enrol a factor before using the platform.',
  },
  IAM_MFA_INVALID: { status: 401, title: 'Invalid MFA code', message: 'The code is wrong, expired or was already used.' },
  IAM_MFA_CHALLENGE_INVALID: { status: 401, title: 'Invalid MFA challenge', message: 'The MFA challenge is wrong, expired or already used: sign in again.' },
  IAM_MFA_NOT_ENROLLED: { status: 409, title: 'No such MFA factor', message: 'This MFA factor is not enrolled.' },
  IAM_MFA_ALREADY_ENROLLED: { status: 409, title: 'MFA already enrolled', message: 'This MFA factor is already enrolled and confirmed.' },
  IAM_WEBAUTHN_INVALID: { status: 400, title: 'Passkey verification failed', message: 'The passkey response could not be verified.' },
  // Identity and access: passwords, invitations, profile
  IAM_TOKEN_USED: { status: 400, title: 'Link invalid', message: 'The invitation or reset token is wrong, expired or already used.' },
  IAM_USER_INVITED: { status: 409, title: 'Invitation pending', message: 'The user has not accepted their invitation yet: invite them again instead.' },
  // Identity and access: API clients
  IAM_CLIENT_EXISTS: { status: 409, title: 'Client exists', message: 'An API client with this name already exists in the tenant.' },
  IAM_CLIENT_NOT_FOUND: { status: 404, title: 'Client not found', message: 'No such API client.' },
  IAM_CLIENT_INVALID: { status: 401, title: 'Invalid client', message: 'Client authentication failed (unknown client, wrong, expired or revoked secret).' },
  IAM_GRANT_TYPE_UNSUPPORTED: { status: 400, title: 'Unsupported grant type', message: 'Only grant_type=client_credentials is supported here.' },
  IAM_EXPIRY_INVALID: { status: 400, title: 'Invalid expiry', message: 'Expiry must be a duration such as 90d, between 1 hour and 2 years.' },
  // Identity and access: roles and reviews
  IAM_ROLE_EXISTS: { status: 409, title: 'Role exists', message: 'A role with this name already exists.' },
  IAM_ROLE_IN_USE: { status: 409, title: 'Role in use', message: 'The role is still granted; revoke its grants first.' },
  IAM_PERMISSION_UNKNOWN: { status: 400, title: 'Unknown permission', message: 'A permission is not in the catalog or cannot be given on a tenant.' },
  IAM_REVIEW_NOT_FOUND: { status: 404, title: 'Review not found', message: 'No such access review or review item.' },
  IAM_REVIEW_CLOSED: { status: 409, title: 'Review closed', message: 'The access review is closed.' },
  IAM_REVIEW_ITEM_DECIDED: { status: 409, title: 'Already decided', message: 'This review item already has a decision; decisions are final.' },
  IAM_ROLE_NAME_RESERVED: {
    status: 400,
    title: 'Reserved role name',
    message: 'This name is reserved (a built-in member name of JavaScript objects, such as constructor); choose another.',
  },
  IAM_ROLE_NOT_FOUND: { status: 404, title: 'Role not found', message: 'No such custom role (built-in roles cannot be changed or deleted).' },
  // Tenancy
  TENANCY_TENANT_NOT_FOUND: { status: 404, title: 'Tenant not found', message: 'No such tenant.' },
  TENANCY_TENANT_EXISTS: { status: 409, title: 'Tenant exists', message: 'A tenant with this name already exists.' },
  TENANCY_TENANT_NAME_INVALID: {
    status: 400,
    title: 'Invalid tenant name',
    message:
      'A tenant name is 2-40 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen.',
  },
  TENANCY_STAGE_NOT_FOUND: { status: 404, title: 'Stage not found', message: 'No such stage.' },
  TENANCY_STAGE_EXISTS: { status: 409, title: 'Stage exists', message: 'The tenant already has a stage with this name.' },
  TENANCY_STAGE_NAME_INVALID: {
    status: 400,
    title: 'Invalid stage name',
    message:
      'A stage name is 2-32 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen.',
  },
  TENANCY_LAST_STAGE: { status: 409, title: 'Last stage', message: 'A tenant keeps at least one stage; delete the tenant instead.' },
  TENANCY_CONFIRMATION_REQUIRED: {
    status: 400,
    title: 'Confirmation required',
    message: 'Repeat the tenant name in the confirm field to delete it.',
  },
  // Audit trail
  AUDIT_QUERY_INVALID: { status: 400, title: 'Invalid audit query', message: 'The audit filters are not valid.' },
  AUDIT_CHECKPOINTS_INVALID: {
    status: 400,
    title: 'Invalid checkpoints',
    message: 'The checkpoints given are not in the exported checkpoint format.',
  },
  // Data protection: field encryption
  CRYPTO_ENVELOPE_INVALID: {
    status: 500,
    title: 'Invalid encrypted value',
    message: 'A stored encrypted value is not in a known envelope format.',
  },
  CRYPTO_KEY_VERSION_UNKNOWN: {
    status: 500,
    title: 'Unknown key version',
    message: 'A stored encrypted value names a key version that is not available.',
  },
  CRYPTO_DECRYPT_FAILED: {
    status: 500,
    title: 'Decryption failed',
    message: 'A stored encrypted value failed its integrity check.',
  },
  CRYPTO_TEXT_INVALID: {
    status: 400,
    title: 'Invalid text',
    message: 'A text value is not well-formed Unicode.',
  },
  // Data protection: key management (KMS providers)
  CRYPTO_KMS_UNAVAILABLE: {
    status: 503,
    title: 'Key management unavailable',
    message: 'The key management service is unavailable.',
  },
  CRYPTO_KMS_TOKEN_NOT_FOUND: {
    status: 503,
    title: 'HSM token not found',
    message: 'No initialised HSM token carries the configured label.',
  },
  CRYPTO_KMS_PIN_WRONG: { status: 500, title: 'HSM PIN rejected', message: 'The HSM rejected the PIN.' },
  CRYPTO_KMS_MECHANISM_UNSUPPORTED: {
    status: 500,
    title: 'HSM mechanism unsupported',
    message: 'The HSM token does not support AES-GCM (CKM_AES_GCM).',
  },
  CRYPTO_KMS_PASSPHRASE_WRONG: {
    status: 500,
    title: 'Root key passphrase wrong',
    message: 'The root key passphrase is wrong, or the root key file was altered.',
  },
  CRYPTO_KMS_PASSPHRASE_REQUIRED: {
    status: 500,
    title: 'Root key passphrase required',
    message: 'The root key file is protected by a passphrase; none was given.',
  },
  CRYPTO_KMS_PASSPHRASE_UNEXPECTED: {
    status: 500,
    title: 'Root key file not passphrase-protected',
    message: 'A root key passphrase was given, but the root key file is not protected by one.',
  },
  CRYPTO_KMS_KEYSTORE_INVALID: {
    status: 500,
    title: 'Root key store invalid',
    message: 'The root key store cannot be read: it is damaged or of an unknown format.',
  },
  CRYPTO_KMS_KEYSTORE_INSECURE: {
    status: 500,
    title: 'Root key store insecure',
    message: 'The root key store is not protected as required (file permissions or key attributes).',
  },
  CRYPTO_KMS_ROOT_KEY_MISSING: {
    status: 500,
    title: 'Root key missing',
    message: 'No root key exists and creating one was not allowed.',
  },
  CRYPTO_KMS_KEY_NOT_FOUND: {
    status: 500,
    title: 'Root key version not found',
    message: 'The root key version does not exist or was retired.',
  },
  CRYPTO_KMS_KEY_CURRENT: {
    status: 409,
    title: 'Root key version in use',
    message: 'The current root key version cannot be retired; rotate first.',
  },
  CRYPTO_KMS_UNWRAP_FAILED: {
    status: 500,
    title: 'Key unwrap failed',
    message: 'A wrapped key failed to unwrap: it was altered, or belongs to another owner.',
  },
  // Apps: manifest validation (APP_MANIFEST_INVALID carries the diagnostics; the others are diagnostic codes)
  APP_MANIFEST_INVALID: { status: 400, title: 'Invalid app manifest', message: 'The app manifest is not valid.' },
  APP_MANIFEST_TOO_LARGE: { status: 400, title: 'Manifest too large', message: 'The app manifest is larger than 1 MiB.' },
  APP_YAML_SYNTAX: { status: 400, title: 'YAML syntax error', message: 'The manifest is not well-formed YAML or JSON.' },
  APP_YAML_DUPLICATE_KEY: { status: 400, title: 'Duplicate key', message: 'A key appears twice in one mapping.' },
  APP_YAML_ALIAS_LIMIT: { status: 400, title: 'Too many aliases', message: 'YAML aliases expand beyond the limit.' },
  APP_UNKNOWN_KEY: { status: 400, title: 'Unknown key', message: 'A key is not part of the manifest format.' },
  APP_KEY_REQUIRED: { status: 400, title: 'Key required', message: 'A required key is missing.' },
  APP_VALUE_INVALID: { status: 400, title: 'Invalid value', message: 'A value has the wrong type or form.' },
  APP_NAME_INVALID: { status: 400, title: 'Invalid name', message: 'A name breaks the naming rules.' },
  APP_RESERVED_NAME: { status: 400, title: 'Reserved name', message: 'A name is reserved.' },
  APP_DUPLICATE_NAME: { status: 400, title: 'Duplicate name', message: 'Two names differ only in case.' },
  APP_VERSION_INVALID: { status: 400, title: 'Invalid version', message: 'The version is not a semantic version.' },
  APP_LIMIT_EXCEEDED: { status: 400, title: 'Limit exceeded', message: 'The manifest exceeds a size limit.' },
  APP_UNKNOWN_ROLE: { status: 400, title: 'Unknown role', message: 'A rule or action names a role the app does not declare.' },
  APP_UNKNOWN_ENTITY: { status: 400, title: 'Unknown entity', message: 'A reference names an entity the app does not declare.' },
  APP_UNKNOWN_ATTRIBUTE: { status: 400, title: 'Unknown attribute', message: 'A rule, index or field list names an attribute the entity does not have.' },
  APP_UNKNOWN_CONDITION: { status: 400, title: 'Unknown condition', message: 'A rule uses a name that is neither a variable nor a named condition.' },
  APP_UNKNOWN_ACTION: { status: 400, title: 'Unknown action', message: 'A timer names an action the app does not declare.' },
  APP_ATTRIBUTE_OPTION_INVALID: { status: 400, title: 'Invalid attribute option', message: 'An attribute option does not fit the attribute.' },
  APP_DEFAULT_INVALID: { status: 400, title: 'Invalid default', message: 'A default value does not fit its attribute.' },
  APP_ENCRYPTED_TYPE: { status: 400, title: 'Type cannot be encrypted', message: 'This attribute type cannot be encrypted.' },
  APP_SEARCHABLE_NOT_ENCRYPTED: { status: 400, title: 'Searchable without encryption', message: 'Only encrypted attributes can be searchable.' },
  APP_ENCRYPTED_INDEX: { status: 400, title: 'Index on encrypted attribute', message: 'An encrypted attribute cannot be unique or indexed.' },
  APP_INDEX_INVALID: { status: 400, title: 'Invalid index', message: 'An index is not valid.' },
  APP_RULE_SYNTAX: { status: 400, title: 'Rule syntax error', message: 'A rule is not valid CEL.' },
  APP_RULE_UNSUPPORTED: { status: 400, title: 'Outside the rule profile', message: 'A rule uses CEL outside the Accord profile.' },
  APP_RULE_VARIABLE: { status: 400, title: 'Variable not available', message: 'A rule reads a variable it cannot read here.' },
  APP_RULE_TYPE: { status: 400, title: 'Rule type error', message: 'A rule does not type-check.' },
  APP_RULE_ENCRYPTED: { status: 400, title: 'Rule reads encrypted data', message: 'A rule reads an encrypted attribute.' },
  APP_RULE_TOO_COMPLEX: { status: 400, title: 'Rule too complex', message: 'A rule exceeds the size limits.' },
  APP_RULE_PLACEMENT: { status: 400, title: 'Misplaced rule part', message: 'A rule part does not apply to this operation.' },
  APP_CONDITION_CYCLE: { status: 400, title: 'Condition cycle', message: 'Named conditions use each other in a cycle.' },
  APP_ACTION_SOURCE: { status: 400, title: 'Action source unusable', message: 'An action source cannot be used.' },
  APP_TIMER_INVALID: { status: 400, title: 'Invalid timer', message: 'A timer is not valid.' },
  APP_SETTING_INVALID: { status: 400, title: 'Invalid setting', message: 'A setting is not valid.' },
  APP_RESTRICTED_UNCONDITIONAL: { status: 400, title: 'Restricted data without row condition', message: 'A role reads restricted data on every row.' },
  APP_RULE_UNINDEXED: { status: 400, title: 'Rule without index', message: 'A rule filters on columns no index serves.' },
  APP_ROLE_UNUSED: { status: 400, title: 'Unused role', message: 'A role is granted nothing.' },
  APP_ENTITY_NO_ACCESS: { status: 400, title: 'Entity without access rules', message: 'No role may use an entity.' },
  // Perimeter: rate limits, address lists, CORS, request limits
  PERIMETER_RATE_LIMITED: { status: 429, title: 'Too many requests', message: 'Too many requests; slow down and retry after the time given.' },
  PERIMETER_ADDRESS_DENIED: { status: 403, title: 'Address not allowed', message: 'Requests from this address are not allowed here.' },
  PERIMETER_RULE_INVALID: { status: 400, title: 'Invalid address rule', message: 'The address or CIDR range is not valid.' },
  PERIMETER_RULE_EXISTS: { status: 409, title: 'Rule exists', message: 'This rule exists already.' },
  PERIMETER_RULE_NOT_FOUND: { status: 404, title: 'Rule not found', message: 'No such address rule.' },
  PERIMETER_SETTINGS_INVALID: { status: 400, title: 'Invalid perimeter settings', message: 'The rate-limit or CORS settings are not valid.' },
  PERIMETER_CORS_REFUSED: { status: 403, title: 'Origin not allowed', message: 'This origin may not call this stage.' },
  REQUEST_HEADERS_TOO_LARGE: { status: 431, title: 'Request headers too large', message: 'The request has too many or too large headers.' },
  REQUEST_JSON_TOO_COMPLEX: { status: 400, title: 'JSON too complex', message: 'The JSON body is nested too deeply or has too many keys.' },
  // CLI-side errors (never sent by the server, printed by the CLI with the same shape)
  CLI_USAGE: { status: 400, title: 'Usage error', message: 'The command line is not valid.' },
  CLI_FILE_UNREADABLE: { status: 400, title: 'Unreadable file', message: 'A file given on the command line cannot be read.' },
  CLI_NOT_LOGGED_IN: { status: 401, title: 'Not logged in', message: 'Run `accord login` first.' },
  CLI_CONNECTION_FAILED: { status: 503, title: 'Connection failed', message: 'Cannot reach the Accord server.' },
} as const satisfies Record<string, { status: number; title: string; message: string }>;

/** A stable catalog code. */
export type ErrorCode = keyof typeof catalog;
