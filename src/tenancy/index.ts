export { assertStageName, assertTenantName, DEFAULT_STAGES } from './names.ts';
export { tenancyRoutes } from './routes.ts';
export {
  createStage,
  createTenant,
  deleteTenant,
  getTenant,
  listStages,
  listTenants,
  type Stage,
  type Tenant,
} from './service.ts';
