import type { Command } from 'commander';

/** (being built) */
export function registerAccountCommands(_program: Command): void {}
