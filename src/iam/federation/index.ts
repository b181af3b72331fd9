export { federationRoutes } from './routes.ts';
export { scimRoutes } from './scim-routes.ts';
export { pruneFlows } from './flows.ts';
export { SAML_ACS_ROUTE } from './routes.ts';
