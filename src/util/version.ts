import { createRequire } from 'node:module';

/** bnx's own version, from package.json (this file runs as dist/src/util/version.js). */
export const BNX_VERSION: string = (createRequire(import.meta.url)('../../../package.json') as { version: string })
  .version;
