import type { Command } from 'commander';

/** (being built) */
export function registerRoleCommands(_program: Command): void {}
