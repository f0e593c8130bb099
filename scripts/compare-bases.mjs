#!/usr/bin/env node
// `node scripts/compare-bases.mjs STAGE0_JSON N OUT_JSON BASE_DIR...` (after `npm run build`): greedy
// held-out accuracy of several base models on the same items, the held-out groups of the stage-0
// config STAGE0_JSON (a run's stage0.json), N items a group; the lookup drill's groups also split by
// the asked type. Prints one table, the bases side by side, and writes it to OUT_JSON. docs/stage0.md
// compares runs this way ("Run 7", "Run 8").
import { readFileSync, writeFileSync } from 'node:fs';
import * as t from '../dist/src/index.js';

const [configPath, nArg, out, ...dirs] = process.argv.slice(2);
if (!configPath || !out || dirs.length === 0 || !(Number(nArg) > 0)) {
  console.error('usage: node scripts/compare-bases.mjs STAGE0_JSON N OUT_JSON BASE_DIR...');
  process.exit(2);
}
const n = Number(nArg);
await t.init();
const S = t.stages;
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const tok = t.data.defaultTokenizer();
// the lookup items in the order evaluateStage0 scores them, to split its items by the asked type
const lookupItems = S.stage0EvalExamples(config, n).filter((e) => e.task === 'lookup');
const typeOf = (prompt) => {
  const word = /Is there an? (\w+)/.exec(prompt)?.[1]; // the observation form asks otherwise: 'unknown'
  return t.data.ATTRIBUTE_TYPES.find((ty) => t.data.ATTRIBUTE_VALUES[ty].includes(word)) ?? 'unknown';
};
const results = {};
for (const dir of dirs) {
  const model = t.nn.loadVisionLanguageModel(dir);
  const t0 = performance.now();
  const ev = await S.evaluateStage0(model, tok, config, n);
  const groups = {};
  for (const v of Object.values(ev)) for (const [g, x] of Object.entries(v.groups)) groups[g] = { accuracy: x.accuracy, n: x.n, chance: v.chance?.[g] ?? (g.startsWith('lookup') ? 0.5 : null) };
  for (const [i, item] of (ev.lookup?.items ?? []).entries()) {
    const g = `${item.group}/${typeOf(lookupItems[i].prompt)}`;
    groups[g] ??= { accuracy: 0, n: 0, chance: 0.5 };
    groups[g].accuracy = (groups[g].accuracy * groups[g].n + item.correct) / (groups[g].n + 1);
    groups[g].n++;
  }
  results[dir] = { seconds: Math.round((performance.now() - t0) / 1000), groups };
  model.dispose();
  console.error(`${dir}: ${results[dir].seconds} s`);
}
writeFileSync(out, JSON.stringify({ config: configPath, n, results }, null, 1) + '\n');
const names = Object.keys(results[dirs[0]].groups).sort();
console.log(['group', ...dirs, 'chance'].join(' | '));
for (const g of names) {
  const chance = results[dirs[0]].groups[g].chance;
  console.log([g, ...dirs.map((d) => `${(100 * (results[d].groups[g]?.accuracy ?? NaN)).toFixed(0)}%`), chance === null ? '' : `${(100 * chance).toFixed(1)}%`].join(' | '));
}
process.exit(0);
