#!/usr/bin/env node
// The `accord` executable. The platform ships as TypeScript and runs through tsx's loader, so a
// fresh clone works after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
