// `npm run bench`: runs every bench/*.bench.ts (Node, via tsx) in turn. Each prints its figures as
// ratios against a baseline it measures in the same run; absolute times on shared machines are noise.
// `npm run bench -- NAME` runs only the benches whose file name contains NAME.
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const filter = process.argv[2] ?? '';
const files = readdirSync(new URL('.', import.meta.url))
  .filter((f) => f.endsWith('.bench.ts') && f.includes(filter))
  .sort();
if (files.length === 0) {
  console.log(`No benchmarks match "${filter}".`);
  process.exit(1);
}
let failed = 0;
for (const f of files) {
  console.log(`\n=== ${f}`);
  const r = spawnSync('npx', ['tsx', `bench/${f}`], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
