export { assertStageName, assertTenantName, DEFAULT_STAGES } from './names.ts';
export { tenancyRoutes } from './routes.ts';
export {
  createStage,
  createTenant,
  deleteStage,
  deleteTenant,
  getTenant,
  listStages,
  listTenants,
  resolvePathScope,
  type Stage,
  type Tenant,
} from './service.ts';
