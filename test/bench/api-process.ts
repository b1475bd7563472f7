// `memfed <role>` from the TypeScript sources, so the bench measures the code as it stands
// (workers/memfed.mjs runs dist/, which is only as new as the last build).
import { main } from '../../workers/main.js';

process.exitCode = await main(process.argv.slice(2));
