import type { Command } from 'commander';

/** (being built) */
export function registerAccessCommands(_program: Command): void {}
