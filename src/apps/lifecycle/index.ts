// The app lifecycle: revisions, what runs on each stage, deploy / promote / rollback.
export { type DeployedApp, deployedApp } from './store.ts';
