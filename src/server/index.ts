export { type AppOptions, buildApp } from './app.ts';
export { createLogger } from './logger.ts';
export { type RunningPlatform, startPlatform } from './start.ts';
export { operatorUnlock } from './offline.ts';
