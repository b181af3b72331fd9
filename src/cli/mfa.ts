import type { Command } from 'commander';

/** (being built) */
export function registerMfaCommands(_program: Command): void {}
