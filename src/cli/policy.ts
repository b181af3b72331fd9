import type { Command } from 'commander';

/** (being built) */
export function registerPolicyCommands(_program: Command): void {}
