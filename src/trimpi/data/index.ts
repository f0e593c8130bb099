// The data part of TriMPI: scenes and their renderer, ClevrPolicy, SceneQA, ToolPolicy, the tokenizer,
// dataset export and the `trimpi data` command.
export * from './rng.js';
export * from './png.js';
export * from './scene.js';
export * from './clevr_policy.js';
export { BOX, boxContent } from './boxed.js';
export * from './sceneqa.js';
export * from './tool_policy.js';
export * from './tokenizer.js';
export * from './contact_sheet.js';
export * from './render.js';
export * from './export.js';
export { runDataCommand, parseDataArgs, progressBar, DATA_USAGE } from './cli.js';
