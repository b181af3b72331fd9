export { keyRoutes } from './routes.ts';
export {
  keyJobSteps,
  keyStatus,
  listSecrets,
  readSecret,
  rotateKeys,
  rotateRoot,
  setSecret,
} from './service.ts';
