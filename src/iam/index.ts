export { auditSource, authorize, can, seesTenant } from './authorize.ts';
export { type BootstrapState, completeSetup, ensureBootstrap } from './bootstrap.ts';
export { login, logout } from './login.ts';
export { checkPasswordPolicy, hashPassword, verifyPassword } from './passwords.ts';
export { builtInRoles, isPermission, type Permission, permissions, roleHas } from './permissions.ts';
export { iamRoutes } from './routes.ts';
export { authenticateToken, createSession, revokeSession, type SessionPolicy } from './sessions.ts';
export { createUser, findUserByEmail, grantRole, grantsOf, hasOperator, normaliseEmail } from './users.ts';
