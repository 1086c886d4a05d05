// The running build's version, from package.json: the debug endpoint and /metrics both show it, and
// neither should have to load the other to learn it.

import { readFileSync } from 'node:fs';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;
