#!/usr/bin/env node
import { processContext } from '../cli/context.js';
import { main } from '../cli/main.js';

const code = await main(process.argv.slice(2), (json) => processContext({ json }));
// Exit explicitly once output is flushed: a daemon connection or stdin must not keep us alive.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
