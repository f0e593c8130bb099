// Child process of checkpoint_crash.test.ts (plain JS on the built package: run `npm run build`
// first). Saves a small model and its AdamW state into one directory over and over until the parent
// SIGKILLs it: every value of save k (parameters, both moments) is k, the bias corrections are
// k / (k + 1), the step is k. Writes "start k" to stdout before save k and "done k" after it, with
// synchronous writes, so a line is in the pipe even when the kill comes right after it.
//   node checkpoint_crash_child.mjs <file URL of dist/src/index.js> <dir> <first k>
import { writeSync } from 'node:fs';

const [indexUrl, dir, first] = process.argv.slice(2);
const t = await import(indexUrl);
await t.init();
const model = new t.nn.MLP(64, 256);
const opt = new t.nn.AdamW(model.parameters());
const fill = (k) => t.noGrad(() => {
  for (const p of model.parameters()) {
    const { m, v } = opt.moments(p);
    for (const x of [p, m, v]) t.assign(x, k);
  }
  t.assign(opt.biasCorrection, k / (k + 1));
});
// warm up (kernels compiled, readback path used) so that the saves, not the start, fill the time
fill(0);
for (const p of model.parameters()) await p.toArray();
writeSync(1, 'ready\n');
for (let k = Number(first); ; k++) {
  fill(k);
  opt.step = k;
  writeSync(1, `start ${k}\n`);
  await t.nn.saveCheckpoint(dir, model, { optimizer: opt, extra: { k } });
  writeSync(1, `done ${k}\n`);
}
