import type { Command } from 'commander';

/** (being built) */
export function registerClientCommands(_program: Command): void {}
