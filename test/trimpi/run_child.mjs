// Child process of pipeline.test.ts (plain JS on the built package: `npm test` builds first): runs
// the tiny pipeline until the parent SIGKILLs it.
//   node run_child.mjs <file URL of dist/src/index.js> <config JSON>
const [indexUrl, json] = process.argv.slice(2);
const t = await import(indexUrl);
await t.init();
await t.pipeline.runPipeline(JSON.parse(json), t.data.defaultTokenizer(), { log: () => undefined, progress: null });
