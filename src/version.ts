/** acmed's version, from package.json (one place to bump). */
import { createRequire } from 'node:module';

// From src/ (tsx) and dist/ alike, package.json is one folder up.
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
