export { federationRoutes } from './routes.ts';
export { pruneFlows } from './flows.ts';
